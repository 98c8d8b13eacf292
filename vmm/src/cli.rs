//! Command line: parsing (clap) and the checks that need no VM.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::error::{Result, VmmError};
use crate::layout::{MAX_MEMORY_MIB, MIN_MEMORY_MIB};
use crate::options::{self, ConfigFile, RnicOptions, RnicSettings};

/// rnic-vmm: boot a PVH kernel under KVM with the emulated RNIC attached.
#[derive(Parser, Debug)]
#[command(
    name = "rnic-vmm",
    version,
    about = "KVM monitor: boots a PVH kernel with emulated RNICs on PCI 00:01.0, 00:02.0, ...",
    after_help = "--rnic keys: id=NAME (1-32 of A-Z a-z 0-9 - _; default rnicN), \
                  mac=02:7e:57:00:00:01, ipv4=10.77.0.1, ipv6=fd00:4d::1 (default none), \
                  wire=none|unix:LOCAL,PEER|udp:IP:PORT,IP:PORT|pair:OTHER_ID (pair: an \
                  in-process wire to another RNIC of this VM, which names this one back), \
                  pcap=FILE (needs a wire; on a pair, one end's capture holds both directions), \
                  faults=PLANFILE (TOML fault plan, see vmm/README.md), \
                  socket=PATH (the RNIC is served by a running `rnic-device-server --socket PATH` \
                  over vfio-user; no other device keys then).\n\
                  Limits: at most 16 RNICs; ids, MACs and IPv4 addresses unique; \
                  --memory 8..=65536 MiB; --vcpus 1..=2; --cmdline at most 4095 bytes.\n\
                  Exit status: the guest's status written to port 0xF4 (0-255); \
                  123 guest crash (triple fault, failed entry); 124 timeout; \
                  125 monitor error; 121 the out-of-process device (socket=) was lost; 130 SIGINT; 143 SIGTERM; 129 SIGHUP."
)]
pub struct Cli {
    /// PVH kernel (ELF64 with a XEN_ELFNOTE_PHYS32_ENTRY note).
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,

    /// Boot module, in order; NAME (the module's command line) defaults to the
    /// file's base name.
    #[arg(long = "module", value_name = "PATH[=NAME]")]
    pub modules: Vec<String>,

    /// Guest RAM in MiB.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = 256,
        allow_negative_numbers = true
    )]
    pub memory: u64,

    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = "")]
    pub cmdline: String,

    /// Where COM1 output goes: `stdout` or a file path.
    #[arg(long, value_name = "stdout|PATH", default_value = "stdout")]
    pub serial: String,

    /// Attach an RNIC (repeatable: 00:01.0, 00:02.0, ...), with optional settings
    /// KEY=VALUE,... (keys below). Without --rnic or --config, one RNIC with default
    /// settings is attached.
    #[arg(
        long = "rnic",
        value_name = "KEY=VALUE,...",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with = "no_rnic"
    )]
    pub rnic: Vec<String>,

    /// Pass a real PCI device through with VFIO (repeatable). Needs /dev/vfio/vfio,
    /// an IOMMU and the device bound to vfio-pci; otherwise rnic-vmm exits 125 with
    /// one line naming what is missing.
    #[arg(long = "vfio-device", value_name = "/sys/bus/pci/devices/DDDD:BB:DD.F")]
    pub vfio_devices: Vec<PathBuf>,

    /// Boot without any RNIC.
    #[arg(long = "no-rnic")]
    pub no_rnic: bool,

    /// JSON file of RNIC settings, the schema of the API's GET /v1/vm:
    /// {"rnics": [{"id": ..., "mac": ..., "ipv4": ..., "wire": ..., "pcap": ..., "faults": ...}]};
    /// --rnic entries are added after its RNICs.
    #[arg(long, value_name = "FILE", conflicts_with = "no_rnic")]
    pub config: Option<PathBuf>,

    /// Serve the control API (HTTP/JSON) on this Unix socket (created 0600,
    /// removed on exit).
    #[arg(long = "api-socket", value_name = "PATH")]
    pub api_socket: Option<PathBuf>,

    /// Keep the API up after the guest's verdict until PUT /v1/vm/shutdown, a
    /// signal or --timeout; then exit with the guest's status. Needs --api-socket.
    #[arg(long, requires = "api_socket")]
    pub hold: bool,

    /// Wall-clock limit for the guest in seconds (0 = none).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 120,
        allow_negative_numbers = true
    )]
    pub timeout: u64,

    /// Number of vCPUs (1 or 2; vCPU 0 boots).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u8).range(1..=2)
    )]
    pub vcpus: u8,

    /// More logging on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// A `--module` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSpec {
    /// File to load.
    pub path: PathBuf,
    /// Name the guest sees.
    pub name: String,
}

/// Validated monitor configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Kernel image path.
    pub kernel: PathBuf,
    /// Boot modules in order.
    pub modules: Vec<ModuleSpec>,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Kernel command line.
    pub cmdline: String,
    /// `stdout` or a file path.
    pub serial: String,
    /// RNICs to attach, in PCI order (empty: none).
    pub rnics: Vec<RnicSettings>,
    /// Devices to pass through with VFIO (sysfs paths).
    pub vfio_devices: Vec<PathBuf>,
    /// Control API socket.
    pub api_socket: Option<PathBuf>,
    /// Keep the API up after the verdict.
    pub hold: bool,
    /// Guest wall-clock limit.
    pub timeout: Option<Duration>,
    /// vCPU count.
    pub vcpus: u8,
    /// Verbosity.
    pub verbose: u8,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run a VM.
    Run(Config),
    /// Print this text to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

/// Splits `PATH[=NAME]`. The split is at the last `=` when what follows it is a
/// plain name (no `/`), so paths containing `=` still work without a name.
pub fn parse_module_spec(spec: &str) -> Result<ModuleSpec> {
    let (path, name) = match spec.rsplit_once('=') {
        Some((p, n)) if !n.contains('/') && !p.is_empty() => {
            if n.is_empty() {
                return Err(VmmError::Usage(format!(
                    "--module {spec}: the name after '=' is empty"
                )));
            }
            (PathBuf::from(p), n.to_string())
        }
        _ => {
            let path = PathBuf::from(spec);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    VmmError::Usage(format!("--module {spec:?} does not name a file"))
                })?;
            (path, name)
        }
    };
    if path.as_os_str().is_empty() {
        return Err(VmmError::Usage("--module needs a file path".into()));
    }
    Ok(ModuleSpec { path, name })
}

/// Turns a clap error into one line: its first paragraph, without the `error:`
/// prefix.
fn clap_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = para.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// Parses and validates `args` (including the program name).
pub fn parse<I, T>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Parsed::Print(e.render().to_string()))
                }
                _ => Err(VmmError::Usage(clap_error_line(&e))),
            };
        }
    };
    if cli.memory < MIN_MEMORY_MIB || cli.memory > MAX_MEMORY_MIB {
        return Err(VmmError::Usage(format!(
            "--memory {} is out of range: give {MIN_MEMORY_MIB}..={MAX_MEMORY_MIB} MiB",
            cli.memory
        )));
    }
    let modules = cli
        .modules
        .iter()
        .map(|s| parse_module_spec(s))
        .collect::<Result<Vec<_>>>()?;
    if cli.serial.is_empty() {
        return Err(VmmError::Usage(
            "--serial needs `stdout` or a file path".into(),
        ));
    }
    let rnics = rnic_settings(&cli)?;
    Ok(Parsed::Run(Config {
        kernel: cli.kernel,
        modules,
        memory_mib: cli.memory,
        cmdline: cli.cmdline,
        serial: cli.serial,
        rnics,
        vfio_devices: cli.vfio_devices,
        api_socket: cli.api_socket,
        hold: cli.hold,
        timeout: (cli.timeout > 0).then(|| Duration::from_secs(cli.timeout)),
        vcpus: cli.vcpus,
        verbose: cli.verbose,
    }))
}

/// The RNICs the command line asks for: `--config`'s, then `--rnic`'s; one with
/// default settings when neither is given; none with `--no-rnic`.
fn rnic_settings(cli: &Cli) -> Result<Vec<RnicSettings>> {
    if cli.no_rnic {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<RnicOptions> = Vec::new();
    if let Some(path) = &cli.config {
        let text = read_input("config file", path)?;
        let file: ConfigFile =
            serde_json::from_slice(&text).map_err(|source| VmmError::ConfigFile {
                path: path.clone(),
                source,
            })?;
        wanted.extend(file.rnics);
    }
    for text in &cli.rnic {
        wanted.push(options::parse_rnic_option(text).map_err(VmmError::Usage)?);
    }
    if cli.config.is_none() && cli.rnic.is_empty() {
        wanted.push(RnicOptions::default());
    }
    options::resolve(&wanted).map_err(VmmError::Usage)
}

/// Reads a file named on the command line; the error says which and why.
pub fn read_input(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_input(what, path)?
        .read_to_end(&mut bytes)
        .map_err(|e| input_error(what, path, format!("{e}; check its permissions")))?;
    Ok(bytes)
}

/// Opens a regular file named on the command line for reading; the error says which
/// and why.
pub fn open_input(what: &'static str, path: &Path) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path)
        .map_err(|e| input_error(what, path, format!("{e}; check the path")))?;
    if !meta.is_file() {
        return Err(input_error(
            what,
            path,
            "it is not a regular file (a directory, FIFO or device); pass a file".into(),
        ));
    }
    std::fs::File::open(path)
        .map_err(|e| input_error(what, path, format!("{e}; check its permissions")))
}

fn input_error(what: &'static str, path: &Path, reason: String) -> VmmError {
    VmmError::File {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config> {
        let mut v = vec!["rnic-vmm"];
        v.extend_from_slice(args);
        match parse(v)? {
            Parsed::Run(c) => Ok(c),
            Parsed::Print(_) => panic!("unexpected help"),
        }
    }

    #[test]
    fn vfio_devices_are_kept_in_order() {
        let c = run(&[
            "--kernel",
            "k",
            "--vfio-device",
            "/sys/bus/pci/devices/0000:01:00.0",
            "--vfio-device",
            "/sys/bus/pci/devices/0000:02:00.0",
        ])
        .unwrap();
        assert_eq!(
            c.vfio_devices,
            vec![
                PathBuf::from("/sys/bus/pci/devices/0000:01:00.0"),
                PathBuf::from("/sys/bus/pci/devices/0000:02:00.0")
            ]
        );
        assert!(run(&["--kernel", "k"]).unwrap().vfio_devices.is_empty());
    }

    #[test]
    fn defaults() {
        let c = run(&["--kernel", "k.elf"]).unwrap();
        assert_eq!(c.kernel, PathBuf::from("k.elf"));
        assert_eq!(c.memory_mib, 256);
        assert_eq!(c.rnics.len(), 1);
        assert_eq!(c.rnics[0].id, "rnic0");
        assert_eq!(c.rnics[0].pci_device, 1);
        assert!(!c.hold);
        assert_eq!(c.api_socket, None);
        assert_eq!(c.timeout, Some(Duration::from_secs(120)));
        assert_eq!(c.vcpus, 1);
        assert_eq!(c.serial, "stdout");
        assert_eq!(c.cmdline, "");
        assert!(c.modules.is_empty());
    }

    #[test]
    fn all_options() {
        let c = run(&[
            "--kernel",
            "k",
            "--module",
            "/x/rnic.sys",
            "--module",
            "/y/plan.bin=plan",
            "--memory",
            "512",
            "--cmdline",
            "a b",
            "--serial",
            "/tmp/s",
            "--no-rnic",
            "--timeout",
            "0",
            "--vcpus",
            "2",
            "-vv",
        ])
        .unwrap();
        assert_eq!(
            c.modules,
            vec![
                ModuleSpec {
                    path: "/x/rnic.sys".into(),
                    name: "rnic.sys".into()
                },
                ModuleSpec {
                    path: "/y/plan.bin".into(),
                    name: "plan".into()
                },
            ]
        );
        assert_eq!(c.memory_mib, 512);
        assert_eq!(c.cmdline, "a b");
        assert_eq!(c.serial, "/tmp/s");
        assert!(c.rnics.is_empty());
        assert_eq!(c.timeout, None);
        assert_eq!(c.vcpus, 2);
        assert_eq!(c.verbose, 2);
    }

    #[test]
    fn rnic_no_rnic_and_hold_combinations() {
        let e = run(&["--kernel", "k", "--no-rnic", "--rnic"]).unwrap_err();
        assert!(e.to_string().contains("--no-rnic"), "{e}");
        let c = run(&["--kernel", "k", "--rnic"]).unwrap();
        assert_eq!(c.rnics.len(), 1);
        // A bare --rnic before another option does not swallow it.
        let c = run(&["--kernel", "k", "--rnic", "--memory", "64"]).unwrap();
        assert_eq!((c.rnics.len(), c.memory_mib), (1, 64));
        let c = run(&[
            "--kernel",
            "k",
            "--rnic",
            "--rnic",
            "id=right,wire=udp:127.0.0.1:7001,127.0.0.1:7000",
            "--api-socket",
            "/tmp/api.sock",
            "--hold",
        ])
        .unwrap();
        assert_eq!(
            c.rnics.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["rnic0", "right"]
        );
        assert_eq!(c.rnics[1].pci_device, 2);
        assert_eq!(c.api_socket, Some(PathBuf::from("/tmp/api.sock")));
        assert!(c.hold);
        let e = run(&["--kernel", "k", "--hold"]).unwrap_err();
        assert!(e.to_string().contains("--api-socket"), "{e}");
        let e = run(&["--kernel", "k", "--rnic", "mac=zz"]).unwrap_err();
        assert!(e.to_string().contains("mac `zz`"), "{e}");
    }

    #[test]
    fn config_file_rnics_come_first() {
        let dir = std::env::temp_dir().join(format!("rnic-vmm-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vm.json");
        std::fs::write(&file, r#"{"rnics": [{"id": "from-file"}]}"#).unwrap();
        let c = run(&[
            "--kernel",
            "k",
            "--config",
            file.to_str().unwrap(),
            "--rnic",
            "id=extra",
        ])
        .unwrap();
        assert_eq!(
            c.rnics.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["from-file", "extra"]
        );
        std::fs::write(&file, "{\n  \"rnics\": [{\"id\": 5}]\n}").unwrap();
        let e = run(&["--kernel", "k", "--config", file.to_str().unwrap()]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        std::fs::write(&file, r#"{"rnics": []}"#).unwrap();
        let c = run(&["--kernel", "k", "--config", file.to_str().unwrap()]).unwrap();
        assert!(c.rnics.is_empty(), "an empty list means no RNIC");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_are_one_line_usage_errors() {
        for args in [
            &["--kernel", "k", "--memory", "0"][..],
            &["--kernel", "k", "--memory", "999999999"],
            &["--kernel", "k", "--vcpus", "3"],
            &["--kernel", "k", "--vcpus", "0"],
            &["--kernel", "k", "--timeout", "-1"],
            &["--kernel", "k", "--bogus"],
            &["--memory", "64"],
            &["--kernel", "k", "--module", "x="],
        ] {
            let e = run(args).unwrap_err();
            assert!(matches!(e, VmmError::Usage(_)), "{args:?}");
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("--help"), "{msg}");
        }
        let msg = run(&["--kernel", "k", "--vcpus", "3"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--vcpus"), "{msg}");
        let msg = run(&["--memory", "64"]).unwrap_err().to_string();
        assert!(msg.contains("--kernel"), "{msg}");
    }

    #[test]
    fn help_is_printed_not_an_error() {
        assert!(matches!(
            parse(["rnic-vmm", "--help"]).unwrap(),
            Parsed::Print(_)
        ));
    }

    #[test]
    fn module_specs() {
        assert_eq!(
            parse_module_spec("a/b=c/d.sys").unwrap(),
            ModuleSpec {
                path: "a/b=c/d.sys".into(),
                name: "d.sys".into()
            }
        );
        assert_eq!(
            parse_module_spec("m.bin=drv.sys").unwrap(),
            ModuleSpec {
                path: "m.bin".into(),
                name: "drv.sys".into()
            }
        );
        assert!(parse_module_spec("/").is_err());
        assert!(parse_module_spec("").is_err());
    }

    #[test]
    fn read_input_rejects_directories_and_missing_files() {
        let e = read_input("module", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_input("kernel", Path::new("/nonexistent/k"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read kernel /nonexistent/k"), "{e}");
    }
}
