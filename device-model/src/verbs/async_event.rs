//! The asynchronous events of the verbs engine and their event-ring encoding. The
//! engine reaches the device around it through [`crate::env::DeviceEnv`].

use crate::events::Event;
use rnic_contract::event::code;
pub use rnic_contract::event::qp_error_cause;
use serde::Serialize;

/// Asynchronous events of the verbs engine (`docs/device-spec.md` §4.2, §12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AsyncEvent {
    /// The device moved a QP to ERR on its own (error completion, bad doorbell,
    /// DMA failure, retry exhausted, CQ overflow). `cause` is a completion status
    /// code (`WcStatus`) or one of [`qp_error_cause`].
    QpError {
        /// The QP.
        qpn: u32,
        /// A completion status code, or one of [`qp_error_cause`].
        cause: u8,
    },
    /// Responder side: a request violated memory protection (bad rkey, PD, rights
    /// or bounds); the QP was moved to ERR.
    QpAccessError {
        /// The QP.
        qpn: u32,
    },
    /// Responder side: a malformed or unexpected request; the QP was moved to ERR.
    QpRequestError {
        /// The QP.
        qpn: u32,
    },
    /// A QP in SQD has no outstanding send work any more.
    SqDrained {
        /// The QP.
        qpn: u32,
    },
    /// A CQ overflowed or its ring could not be written; it accepts no more entries.
    CqError {
        /// The CQ.
        cqn: u32,
    },
    /// A connection manager event (`docs/device-spec.md` §3.14, §4.2): one of the
    /// `CM_*` codes `0x30..=0x36` of [`code`].
    Cm {
        /// The event code.
        code: u8,
        /// The connection id.
        conn: u32,
        /// Code-specific detail (listener id, QPN, reject reason, cause).
        detail: u32,
    },
}

impl AsyncEvent {
    /// Event code for the device's event queue entry.
    pub const fn code(&self) -> u8 {
        match self {
            AsyncEvent::QpError { .. } => code::QP_ERROR,
            AsyncEvent::QpAccessError { .. } => code::QP_ACCESS_ERROR,
            AsyncEvent::QpRequestError { .. } => code::QP_REQUEST_ERROR,
            AsyncEvent::SqDrained { .. } => code::SQ_DRAINED,
            AsyncEvent::CqError { .. } => code::CQ_ERROR,
            AsyncEvent::Cm { code, .. } => *code,
        }
    }

    /// The QP or CQ number the event is about.
    pub const fn handle(&self) -> u32 {
        match *self {
            AsyncEvent::QpError { qpn, .. }
            | AsyncEvent::QpAccessError { qpn }
            | AsyncEvent::QpRequestError { qpn }
            | AsyncEvent::SqDrained { qpn } => qpn,
            AsyncEvent::CqError { cqn } => cqn,
            AsyncEvent::Cm { conn, .. } => conn,
        }
    }

    /// Event-specific detail (the cause of `QpError`, the detail of a CM event,
    /// else 0).
    pub const fn detail(&self) -> u32 {
        match *self {
            AsyncEvent::QpError { cause, .. } => cause as u32,
            AsyncEvent::Cm { detail, .. } => detail,
            _ => 0,
        }
    }
}

impl From<AsyncEvent> for Event {
    fn from(ev: AsyncEvent) -> Event {
        Event {
            code: ev.code(),
            handle: ev.handle(),
            detail: ev.detail(),
        }
    }
}

impl AsyncEvent {
    /// The verbs event an event-ring entry encodes, `None` for codes that are not
    /// verbs events (or a `QP_ERROR` cause that does not fit a byte).
    pub fn from_event(ev: &Event) -> Option<AsyncEvent> {
        let (qpn, cqn) = (ev.handle, ev.handle);
        Some(match ev.code {
            code::QP_ERROR => AsyncEvent::QpError {
                qpn,
                cause: u8::try_from(ev.detail).ok()?,
            },
            code::QP_ACCESS_ERROR => AsyncEvent::QpAccessError { qpn },
            code::QP_REQUEST_ERROR => AsyncEvent::QpRequestError { qpn },
            code::SQ_DRAINED => AsyncEvent::SqDrained { qpn },
            code::CQ_ERROR => AsyncEvent::CqError { cqn },
            code::CM_CONNECT_REQUEST..=code::CM_CONNECT_FAILED => AsyncEvent::Cm {
                code: ev.code,
                conn: ev.handle,
                detail: ev.detail,
            },
            _ => return None,
        })
    }
}
