//! MSI-X delivery to a vfio-user client: one eventfd per vector, handed over by the
//! client in SET_IRQS. The client (QEMU) owns the MSI-X table and the message each
//! vector sends; the device only says "vector N fired" by writing to N's eventfd.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, MutexGuard};

use rnic_device::{InterruptError, InterruptSink, MsiMessage};

/// An [`InterruptSink`] that signals the client's eventfd of a vector.
#[derive(Debug)]
pub struct EventfdSink {
    fds: Mutex<Vec<Option<File>>>,
}

impl EventfdSink {
    /// A sink for `vectors` vectors, none of them connected yet.
    pub fn new(vectors: usize) -> Self {
        EventfdSink {
            fds: Mutex::new((0..vectors).map(|_| None).collect()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<File>>> {
        // A poisoned lock only means a panic elsewhere; the table stays usable.
        self.fds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects `vector` to `fd` (an eventfd) or disconnects it (`None`). Returns
    /// false when the vector is out of range.
    pub fn set(&self, vector: usize, fd: Option<File>) -> bool {
        match self.lock().get_mut(vector) {
            Some(slot) => {
                *slot = fd;
                true
            }
            None => false,
        }
    }

    /// Disconnects every vector.
    pub fn clear(&self) {
        self.lock().iter_mut().for_each(|slot| *slot = None);
    }

    /// Whether `vector` has an eventfd.
    pub fn connected(&self, vector: usize) -> bool {
        self.lock().get(vector).is_some_and(Option::is_some)
    }

    /// Signals `vector`'s eventfd (the client's loopback "trigger now" and the
    /// device's interrupts both end here).
    pub fn signal(&self, vector: usize) -> Result<(), InterruptError> {
        let v = u16::try_from(vector).unwrap_or(u16::MAX);
        let fds = self.lock();
        let Some(Some(fd)) = fds.get(vector) else {
            return Err(InterruptError::UnknownVector(v));
        };
        let mut fd: &File = fd;
        fd.write_all(&1u64.to_ne_bytes())
            .map_err(|e| InterruptError::Host {
                vector: v,
                reason: format!("writing the client's eventfd failed: {e}"),
            })
    }
}

impl InterruptSink for EventfdSink {
    fn update_route(&self, _vector: u16, _route: Option<MsiMessage>) -> Result<(), InterruptError> {
        // The client routes the vector (its own MSI-X table); nothing to do here.
        Ok(())
    }

    fn trigger(&self, vector: u16, _msg: MsiMessage) -> Result<(), InterruptError> {
        self.signal(vector as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use vmm_sys_util::eventfd::EventFd;

    fn eventfd_pair() -> (File, EventFd) {
        let efd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let dup = efd.try_clone().unwrap();
        // SAFETY: into_raw_fd hands over ownership of a valid, open descriptor.
        let owned = unsafe { OwnedFd::from_raw_fd(dup.into_raw_fd()) };
        (File::from(owned), efd)
    }

    #[test]
    fn trigger_writes_the_vector_eventfd_and_unknown_vectors_fail() {
        let sink = EventfdSink::new(16);
        let (file, efd) = eventfd_pair();
        assert!(sink.set(3, Some(file)));
        let msg = MsiMessage {
            address: 0,
            data: 0,
        };
        sink.trigger(3, msg).unwrap();
        sink.trigger(3, msg).unwrap();
        assert_eq!(efd.read().unwrap(), 2);
        assert_eq!(sink.trigger(4, msg), Err(InterruptError::UnknownVector(4)));
        assert!(!sink.set(16, None));
        sink.clear();
        assert!(!sink.connected(3));
    }
}
