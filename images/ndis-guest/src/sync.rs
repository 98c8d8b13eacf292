//! `IrqLock`: mutual exclusion on one CPU by masking interrupts.
//!
//! The guest runs on one vCPU, so holding a lock only has to keep interrupt handlers out: the lock
//! saves RFLAGS.IF, masks interrupts and restores IF on release. Re-entering a held lock (an
//! interrupt handler reaching state the interrupted code holds cannot happen, since interrupts are
//! masked) is a kernel bug and panics instead of deadlocking.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::cpu;

pub struct IrqLock<T> {
    held: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialized by `held` with interrupts masked on the only CPU.
unsafe impl<T: Send> Sync for IrqLock<T> {}

impl<T> IrqLock<T> {
    pub const fn new(v: T) -> Self {
        IrqLock {
            held: AtomicBool::new(false),
            data: UnsafeCell::new(v),
        }
    }

    pub fn lock(&self) -> IrqGuard<'_, T> {
        let were_enabled = cpu::interrupts_enabled();
        cpu::cli();
        if self.held.swap(true, Ordering::Acquire) {
            panic!("IrqLock re-entered");
        }
        IrqGuard {
            lock: self,
            were_enabled,
        }
    }

    /// The lock, or None when it is held (by the code a fault interrupted): for the paths that
    /// stop the machine and must not panic.
    pub fn try_lock(&self) -> Option<IrqGuard<'_, T>> {
        let were_enabled = cpu::interrupts_enabled();
        cpu::cli();
        if self.held.swap(true, Ordering::Acquire) {
            if were_enabled {
                cpu::sti();
            }
            return None;
        }
        Some(IrqGuard {
            lock: self,
            were_enabled,
        })
    }
}

pub struct IrqGuard<'a, T> {
    lock: &'a IrqLock<T>,
    were_enabled: bool,
}

impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.held.store(false, Ordering::Release);
        if self.were_enabled {
            cpu::sti();
        }
    }
}
