//! # rnic-vmm: the KVM monitor
//!
//! Boots a PVH kernel (docs/platform.md) under KVM and hosts the emulated RNIC
//! (`rnic-device`) on PCI 00:01.0: PIO/MMIO exits go to COM1, the exit port, PCI
//! configuration mechanism #1 and the RNIC's BARs; the RNIC's MSI-X goes through
//! KVM GSI routing and irqfds. An RNIC may instead be served by another process
//! over vfio-user ([`remote`]), and a real device may be asked for through VFIO
//! ([`passthrough`]); both sit on the bus behind the same PCI function trait.
//!
//! Owns: everything under `vmm/`. Must not touch: the device model's behaviour
//! (it only calls the `rnic-device` seams), the guest, or other folders.
//!
//! | module | what |
//! | --- | --- |
//! | [`client`] | the API client `rnicctl` uses |
//! | [`cli`] | command line and input file checks |
//! | [`layout`] | guest memory map and boot data addresses |
//! | [`elf`] | PVH kernel validation |
//! | [`api`] | control API: HTTP/JSON over a Unix socket (the RNIC routes and the server are `rnic-control`'s, shared with `rnic-device-server`) |
//! | [`boot`] | kernel/module loading, `hvm_start_info` |
//! | [`cpu`] | vCPU CPUID and 32-bit PVH entry state |
//! | [`bus`] | range bus: address ranges to targets, O(log n) lookup |
//! | [`options`] | `--rnic` settings and the `--config` / API JSON schema |
//! | [`pci`] | PCI bus 0, host bridge, BAR placement and MMIO routing |
//! | [`exit`] | vCPU exit handling and the port bus |
//! | [`faultplan`] | TOML/JSON fault plans and API fault entries -> fault engine rules (re-exported from `rnic-control`) |
//! | [`irq`] | GSI routing table + irqfd per MSI-X vector |
//! | [`serial`] | COM1 (vm-superio 16550) |
//! | [`pit`] | the 8254 PIT's counters and port 0x61, in user space (a clock to read; no IRQ 0) |
//! | [`passthrough`] | `--vfio-device`: a VFIO device on the bus, its MSI-X table kept by the monitor and routed through irqfds, guest RAM mapped for its DMA (tested against fakes only) |
//! | [`remote`] | `--rnic socket=PATH`: an RNIC served by another process over vfio-user |
//! | [`rnic`] | the RNICs: interrupt sinks, PCI placement, wires, faults, service pass |
//! | [`vm`] | VM set-up, vCPU and event loop threads, shutdown |
//! | [`fixture`] | tiny PVH test kernels built in memory |

pub mod api;
pub mod boot;
pub mod bus;
pub mod cli;
pub mod client;
pub mod cpu;
pub mod elf;
pub mod error;
pub mod exit;
pub mod fixture;
pub mod irq;
pub mod layout;
pub mod options;
pub mod passthrough;
pub mod pci;
pub mod pit;
pub mod remote;
pub mod rnic;
pub mod serial;
pub mod vm;

pub use rnic_control::faultplan;

use cli::Config;
use error::{Result, VmmError};

/// Checks every input, then builds and runs the VM described by `config`.
pub fn launch(config: &Config) -> Result<vm::RunResult> {
    let layout = layout::MemoryLayout::new(config.memory_mib)?;
    let image = elf::KernelImage::File(cli::open_input("kernel", &config.kernel)?);
    let kernel = elf::parse_pvh_kernel_image(&image).map_err(|reason| VmmError::Kernel {
        path: config.kernel.clone(),
        reason,
    })?;
    let modules = config
        .modules
        .iter()
        .map(|m| {
            Ok(boot::BootModule {
                name: m.name.clone(),
                data: cli::read_input("module", &m.path)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = boot::BootPlan::new(
        layout.clone(),
        kernel,
        image,
        modules,
        config.cmdline.clone(),
    )?;
    let rnics = config
        .rnics
        .iter()
        .cloned()
        .map(rnic::RnicPlan::load)
        .collect::<Result<Vec<_>>>()?;
    let vfio = passthrough::open_all(&config.vfio_devices)?;
    let serial_out = serial::open_sink(&config.serial)?;
    let kvm = vm::open_kvm()?;
    vm::run(
        &kvm,
        vm::VmSpec {
            layout,
            plan,
            serial_out,
            vcpus: config.vcpus,
            timeout: config.timeout,
            rnics,
            api_socket: config.api_socket.clone(),
            hold: config.hold,
            vfio,
        },
    )
}
