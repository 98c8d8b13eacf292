//! Admin command execution (`docs/device-spec.md` §3): fetching commands within the
//! completion space, the `admin_command` fault site, dispatch by opcode to the device
//! core, the Ethernet queues and the verbs engine, and posting completions.

use std::time::Duration;

use rnic_contract::admin::{
    opcode as op, operands, query_device, CommandRepr, NOP_RESULT0, QUERY_DEVICE_EXT_SIZE,
    QUERY_RECORD_SIZE, STATUS_SUCCESS,
};
use rnic_contract::bar0;
use rnic_contract::eth::LINK_SPEED_MBPS;
use rnic_contract::field::Record;
use rnic_contract::pci::{ADMIN_VECTOR, MSIX_VECTORS};

use super::{AdminStatus, COMMANDS_PER_SERVICE, WORK_PER_SERVICE};
use crate::device::Rnic;
use crate::eth::{MacAddress, QueueParams, MAX_QUEUES};
use crate::fault::{admin_scope, scope_queue, FaultAction, FaultPoint, FaultSite};
use crate::stats::{self, DeviceCounters, PortStats};

impl Rnic {
    pub(crate) fn set_admin_error(&mut self, cause: u32) {
        tracing::warn!(cause, "admin queue error");
        if self.core.admin_error == 0 {
            self.core.admin_error = cause;
        }
        self.core.counters.admin_queue_errors += 1;
        self.admin.halt();
        // A command held back by a `delay` fault dies with the queue: its
        // completion could never be written (device-spec.md Appendix A).
        self.admin_delayed = None;
        self.core.raise(ADMIN_VECTOR);
    }

    /// Processes submissions up to the tail while completion space lasts, at most
    /// [`COMMANDS_PER_SERVICE`] of them and stopping after the command that spends
    /// the [`WORK_PER_SERVICE`] budget; later polls run the rest.
    pub(crate) fn run_admin(&mut self) {
        let mut work = 0u32;
        for _ in 0..COMMANDS_PER_SERVICE {
            if !self.ready()
                || self.admin_delayed.is_some()
                || self.core.fatal.is_requested()
                || work >= WORK_PER_SERVICE
            {
                break;
            }
            let cmd = match self.admin.fetch(&mut self.core) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(cause) => {
                    self.set_admin_error(cause);
                    break;
                }
            };
            self.core.counters.admin_commands += 1;
            let point = FaultPoint::new(FaultSite::AdminCommand)
                .queue(scope_queue::ADMIN)
                .opcode(cmd.opcode);
            match self.core.fault(point) {
                Some(FaultAction::NeverComplete) => {
                    self.core.counters.admin_never_completed += 1;
                }
                Some(FaultAction::FailStatus { status }) => {
                    self.post_completion(cmd.id, status, 0, 0);
                }
                Some(FaultAction::Delay { micros }) => {
                    let due = self.core.now.saturating_add(Duration::from_micros(micros));
                    self.admin_delayed = Some((due, cmd));
                }
                Some(FaultAction::Fatal) => {}
                _ => work = work.saturating_add(self.run_command(&cmd)),
            }
        }
    }

    /// Runs one command and posts its completion; returns the work it cost
    /// (see [`WORK_PER_SERVICE`]).
    pub(crate) fn run_command(&mut self, cmd: &CommandRepr) -> u32 {
        let result = self.execute(cmd);
        let work = command_work(cmd, &result);
        let (status, r0, r1) = match result {
            Ok((r0, r1)) => (STATUS_SUCCESS, r0, r1),
            Err(s) => (s.code(), 0, 0),
        };
        tracing::trace!(opcode = cmd.opcode, id = cmd.id, status, "admin command");
        self.post_completion(cmd.id, status, r0, r1);
        work
    }

    pub(crate) fn post_completion(&mut self, id: u16, status: u16, r0: u32, r1: u32) {
        if status != STATUS_SUCCESS {
            self.core.counters.admin_failed += 1;
        }
        match self.admin.complete(&mut self.core, id, status, r0, r1) {
            Ok(()) => self.core.raise(ADMIN_VECTOR),
            Err(cause) => self.set_admin_error(cause),
        }
    }

    pub(crate) fn write_guest(&mut self, addr: u64, data: &[u8]) -> Result<(), AdminStatus> {
        self.core
            .write_scoped(admin_scope(), addr, data)
            .map_err(|_| AdminStatus::DmaError)
    }

    /// Executes one admin command: its results, or the status it failed with.
    pub(crate) fn execute(&mut self, cmd: &CommandRepr) -> Result<(u32, u32), AdminStatus> {
        use operands::{buffer, handle, set_mac, set_mtu, set_multicast, set_rx_filter};
        let bad = AdminStatus::InvalidParam;
        if cmd.flags != 0 || cmd.reserved != 0 {
            return Err(bad);
        }
        let o = Record::new_unchecked(&cmd.operands);
        let no_results = |r: Result<(), AdminStatus>| r.map(|_| (0, 0));
        match cmd.opcode {
            op::NOP => Ok((NOP_RESULT0, 0)),
            op::QUERY_DEVICE => {
                let (addr, len) = (o.u64(buffer::ADDR), o.u32(buffer::LEN));
                if (len as usize) < QUERY_RECORD_SIZE {
                    return Err(bad);
                }
                let info = self.device_info();
                let n = if len as usize >= QUERY_DEVICE_EXT_SIZE {
                    QUERY_DEVICE_EXT_SIZE
                } else {
                    QUERY_RECORD_SIZE
                };
                self.write_guest(addr, &info[..n])?;
                Ok((n as u32, 0))
            }
            op::SET_MTU => {
                let mtu = o.u32(set_mtu::MTU);
                self.eth.set_mtu(mtu)?;
                self.verbs.set_eth_mtu(mtu);
                Ok((0, 0))
            }
            op::SET_MAC => {
                let mac = MacAddress(o.array(set_mac::MAC));
                self.eth.set_mac(mac)?;
                let ip = self.verbs.port().ip;
                self.verbs.set_port_addr(mac.0, ip);
                Ok((0, 0))
            }
            op::SET_RX_FILTER => no_results(self.eth.set_filter(o.u32(set_rx_filter::FILTER))),
            op::SET_MULTICAST => {
                let count = o.u32(set_multicast::COUNT) as usize;
                let addr = o.u64(set_multicast::LIST);
                if count > crate::eth::MAX_MULTICAST {
                    return Err(bad);
                }
                let mut raw = vec![0u8; count * set_multicast::ENTRY_SIZE];
                if count > 0 {
                    self.core
                        .read_scoped(admin_scope(), addr, &mut raw)
                        .map_err(|_| AdminStatus::DmaError)?;
                }
                let list = raw
                    .chunks_exact(set_multicast::ENTRY_SIZE)
                    .map(|c| MacAddress([c[0], c[1], c[2], c[3], c[4], c[5]]))
                    .collect();
                no_results(self.eth.set_multicast(list))
            }
            op::QUERY_LINK => {
                if self.core.link_up() {
                    Ok((1, LINK_SPEED_MBPS))
                } else {
                    Ok((0, 0))
                }
            }
            op::GET_STATS => {
                let (addr, len) = (o.u64(buffer::ADDR), o.u32(buffer::LEN) as usize);
                if len < 8 {
                    return Err(bad);
                }
                let s = self.stats();
                let bytes = stats::encode_guest(&s);
                let total = (bytes.len() - 8) / 8;
                let n = 8 + (len.min(bytes.len()) - 8) / 8 * 8;
                self.write_guest(addr, &bytes[..n])?;
                Ok((n as u32, total as u32))
            }
            op::CLEAR_STATS => {
                self.core.port = PortStats::default();
                self.core.counters = DeviceCounters::default();
                self.core.msix.clear_counters();
                self.core.eq.clear_counters();
                self.eth.clear_stats();
                Ok((0, 0))
            }
            op::RESET_FUNCTION => {
                self.eth.reset();
                self.verbs.reset();
                crate::device::reset_port_addresses(&mut self.verbs, &self.config);
                Ok((0, 0))
            }
            op::CREATE_TXQ | op::CREATE_RXQ => {
                let p = QueueParams::parse(&cmd.operands);
                self.eth
                    .create(&self.core, cmd.opcode == op::CREATE_RXQ, &p)
                    .map(|q| (q, 0))
            }
            op::DESTROY_TXQ | op::DESTROY_RXQ => no_results(
                self.eth
                    .destroy(cmd.opcode == op::DESTROY_RXQ, o.u32(handle::HANDLE)),
            ),
            0x10..=0x3F => self.verbs.admin(&mut self.core, cmd.opcode, &cmd.operands),
            _ => Err(AdminStatus::InvalidOpcode),
        }
    }

    /// The extended `QUERY_DEVICE` record (its first 64 bytes are the record of
    /// version 1.0).
    pub(crate) fn device_info(&self) -> [u8; QUERY_DEVICE_EXT_SIZE] {
        use query_device as f;
        let mut b = [0u8; QUERY_DEVICE_EXT_SIZE];
        let mut r = Record::new_unchecked(&mut b);
        r.set_u32(f::VERSION, bar0::VERSION_VALUE);
        r.set_u32(f::CAPS, bar0::CAPS_VALUE);
        r.set_bytes(f::MAC, &self.eth.mac().0);
        r.set_u32(f::MTU, self.eth.mtu());
        r.set_u32(f::MIN_MTU, crate::eth::MIN_MTU);
        r.set_u32(f::MAX_MTU, crate::eth::MAX_MTU);
        r.set_u16(f::TX_QUEUES, MAX_QUEUES as u16);
        r.set_u16(f::RX_QUEUES, MAX_QUEUES as u16);
        r.set_u32(f::ETH_RING_MAX, crate::eth::RING_MAX);
        r.set_u16(f::MSIX_VECTORS, MSIX_VECTORS);
        r.set_u32(f::ADMIN_RING_MAX, rnic_contract::admin::RING_MAX);
        r.set_u32(f::EVENT_RING_MAX, rnic_contract::admin::RING_MAX);
        r.set_u32(f::LINK_SPEED_MBPS, LINK_SPEED_MBPS);
        r.set_u32(f::MULTICAST_MAX, crate::eth::MAX_MULTICAST as u32);
        r.set_u32(f::RX_FILTER, self.eth.filter());
        r.set_bytes(f::PORT_IPV4, &self.verbs.port().ip);
        r.set_bytes(f::PORT_IPV6, &self.verbs.port_ipv6().unwrap_or([0; 16]));
        b
    }
}

/// The work a command cost: the page entries a `REG_MR` names, counted in full
/// whatever its outcome (a list failing at its last entry was read whole), the CQEs
/// a `RESIZE_CQ` moved, 1 for anything else.
fn command_work(cmd: &CommandRepr, result: &Result<(u32, u32), AdminStatus>) -> u32 {
    match (cmd.opcode, result) {
        (op::REG_MR, _) => Record::new_unchecked(&cmd.operands)
            .u32(operands::reg_mr::PAGE_COUNT)
            .max(1),
        (op::RESIZE_CQ, Ok((moved, _))) => (*moved).max(1),
        _ => 1,
    }
}
