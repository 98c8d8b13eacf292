//! The OID-request rules the guest's NDIS enforces, named after Driver Verifier's NDIS rules:
//! `NdisOidDoubleRequest` (NDIS never has two OID requests outstanding at a miniport, so the
//! guest never issues one while another is open), `NdisOidComplete` (a request the miniport
//! returned `NDIS_STATUS_PENDING` for is completed through NdisMOidRequestComplete; one it
//! returned any other status for is not) and `NdisOidDoubleComplete` (at most one completion).
//! `NdisTimedOidComplete` (a pended request completes within [`OID_COMPLETE_TIMEOUT_MS`]) is
//! timed by the caller, which then reports [`OidViolation::TimedOut`].

use ndis_abi::{NDIS_STATUS, NDIS_STATUS_PENDING};

/// Driver Verifier's `NdisTimedOidComplete` limit: a pended OID must complete within 12 s.
pub const OID_COMPLETE_TIMEOUT_MS: u64 = 12_000;

/// A broken OID rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidViolation {
    /// A request was issued while another was outstanding.
    #[error("NdisOidDoubleRequest: OID request {new:#x} issued while {open:#x} is outstanding")]
    DoubleRequest {
        /// The outstanding request's address.
        open: u64,
        /// The new request's address.
        new: u64,
    },
    /// NdisMOidRequestComplete named a request NDIS did not hand to the miniport (or one
    /// already finished).
    #[error("NdisOidComplete: NdisMOidRequestComplete({request:#x}) for a request that is not outstanding at the miniport")]
    NotOutstanding {
        /// The request the driver completed.
        request: u64,
    },
    /// A request was completed twice.
    #[error("NdisOidDoubleComplete: OID request {request:#x} completed twice (first {first:#010x}, then {second:#010x})")]
    DoubleComplete {
        /// The request.
        request: u64,
        /// Status of the first completion.
        first: NDIS_STATUS,
        /// Status of the second.
        second: NDIS_STATUS,
    },
    /// The handler returned a final status but also called NdisMOidRequestComplete.
    #[error("NdisOidComplete: MiniportOidRequest returned {returned:#010x} (not PENDING) yet also called NdisMOidRequestComplete for {request:#x}")]
    CompletedWithoutPending {
        /// The request.
        request: u64,
        /// What the handler returned.
        returned: NDIS_STATUS,
    },
    /// A pended request did not complete in time.
    #[error("NdisTimedOidComplete: OID request {request:#x} pended and was not completed within {OID_COMPLETE_TIMEOUT_MS} ms")]
    TimedOut {
        /// The request.
        request: u64,
    },
}

/// The one OID request the guest has outstanding at the miniport, if any, and the last one
/// finished (to recognise a late second completion).
#[derive(Debug, Default)]
pub struct OidTracker {
    open: Option<Open>,
    /// The last request finished and its final status.
    last: Option<(u64, NDIS_STATUS)>,
    /// The final status of a pended request completed since [`Self::take_completion`].
    done: Option<NDIS_STATUS>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    request: u64,
    pended: bool,
    completed: Option<NDIS_STATUS>,
}

impl OidTracker {
    /// No request outstanding.
    pub const fn new() -> Self {
        Self {
            open: None,
            last: None,
            done: None,
        }
    }

    /// NDIS is about to call MiniportOidRequest with `request`.
    pub fn issue(&mut self, request: u64) -> Result<(), OidViolation> {
        if let Some(open) = self.open {
            return Err(OidViolation::DoubleRequest {
                open: open.request,
                new: request,
            });
        }
        self.open = Some(Open {
            request,
            pended: false,
            completed: None,
        });
        self.done = None;
        Ok(())
    }

    /// MiniportOidRequest returned `status`. Returns the request's final status if it is
    /// finished now (a final status, or PENDING already completed from inside the handler),
    /// None while it pends.
    pub fn returned(&mut self, status: NDIS_STATUS) -> Result<Option<NDIS_STATUS>, OidViolation> {
        let Some(mut open) = self.open.take() else {
            return Ok(Some(status));
        };
        if status != NDIS_STATUS_PENDING {
            self.last = Some((open.request, status));
            if open.completed.is_some() {
                return Err(OidViolation::CompletedWithoutPending {
                    request: open.request,
                    returned: status,
                });
            }
            return Ok(Some(status));
        }
        if let Some(done) = open.completed {
            self.last = Some((open.request, done));
            return Ok(Some(done));
        }
        open.pended = true;
        self.open = Some(open);
        Ok(None)
    }

    /// The driver called NdisMOidRequestComplete(`request`, `status`). A completion before the
    /// handler has returned is allowed (the handler must then return PENDING).
    pub fn complete(&mut self, request: u64, status: NDIS_STATUS) -> Result<(), OidViolation> {
        match self.open.as_mut() {
            Some(open) if open.request == request => {
                if let Some(first) = open.completed {
                    return Err(OidViolation::DoubleComplete {
                        request,
                        first,
                        second: status,
                    });
                }
                open.completed = Some(status);
                if open.pended {
                    self.open = None;
                    self.last = Some((request, status));
                    self.done = Some(status);
                }
                Ok(())
            }
            _ => match self.last {
                Some((last, first)) if last == request => Err(OidViolation::DoubleComplete {
                    request,
                    first,
                    second: status,
                }),
                _ => Err(OidViolation::NotOutstanding { request }),
            },
        }
    }

    /// The final status of the pended request, once NdisMOidRequestComplete delivered it.
    pub fn take_completion(&mut self) -> Option<NDIS_STATUS> {
        self.done.take()
    }

    /// The pended request did not complete in time: the guest gives up on it (as NDIS would
    /// bug-check); returns the violation to report.
    pub fn time_out(&mut self) -> Option<OidViolation> {
        let open = self.open.take()?;
        Some(OidViolation::TimedOut {
            request: open.request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndis_abi::{NDIS_STATUS_INVALID_DATA, NDIS_STATUS_SUCCESS};

    #[test]
    fn synchronous_request_finishes_at_return() {
        let mut t = OidTracker::new();
        t.issue(0x10).unwrap();
        assert_eq!(
            t.returned(NDIS_STATUS_SUCCESS),
            Ok(Some(NDIS_STATUS_SUCCESS))
        );
        // The next request may follow.
        t.issue(0x20).unwrap();
    }

    #[test]
    fn pended_request_finishes_at_completion() {
        let mut t = OidTracker::new();
        t.issue(0x10).unwrap();
        assert_eq!(t.returned(NDIS_STATUS_PENDING), Ok(None));
        assert_eq!(t.take_completion(), None);
        t.complete(0x10, NDIS_STATUS_INVALID_DATA).unwrap();
        assert_eq!(t.take_completion(), Some(NDIS_STATUS_INVALID_DATA));
        t.issue(0x20).unwrap();
    }

    #[test]
    fn completion_inside_the_handler_then_pending_is_allowed() {
        let mut t = OidTracker::new();
        t.issue(0x10).unwrap();
        t.complete(0x10, NDIS_STATUS_SUCCESS).unwrap();
        assert_eq!(
            t.returned(NDIS_STATUS_PENDING),
            Ok(Some(NDIS_STATUS_SUCCESS))
        );
    }

    #[test]
    fn each_rule_fires() {
        let mut t = OidTracker::new();
        t.issue(0x10).unwrap();
        assert!(matches!(
            t.issue(0x20),
            Err(OidViolation::DoubleRequest {
                open: 0x10,
                new: 0x20
            })
        ));
        assert_eq!(t.returned(NDIS_STATUS_PENDING), Ok(None));
        t.complete(0x10, NDIS_STATUS_SUCCESS).unwrap();
        assert!(matches!(
            t.complete(0x10, NDIS_STATUS_SUCCESS),
            Err(OidViolation::DoubleComplete { request: 0x10, .. })
        ));
        assert_eq!(
            t.complete(0x99, 0),
            Err(OidViolation::NotOutstanding { request: 0x99 })
        );

        t.issue(0x30).unwrap();
        t.complete(0x30, NDIS_STATUS_SUCCESS).unwrap();
        assert!(matches!(
            t.returned(NDIS_STATUS_SUCCESS),
            Err(OidViolation::CompletedWithoutPending { request: 0x30, .. })
        ));

        t.issue(0x40).unwrap();
        assert_eq!(t.returned(NDIS_STATUS_PENDING), Ok(None));
        assert_eq!(t.time_out(), Some(OidViolation::TimedOut { request: 0x40 }));
        assert_eq!(t.time_out(), None);
        let text = OidViolation::TimedOut { request: 0x40 }.to_string();
        assert!(text.starts_with("NdisTimedOidComplete"), "{text}");
    }
}
