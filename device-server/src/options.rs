//! Command-line options of `rnic-device-server` and the wire they describe.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;
use rnic_control::api::check_id;
use rnic_control::faultplan::{load_plan, PlannedFault};
use rnic_device::wire::{CapturingWire, LoopbackWire, UdpWire, UnixWire, WireBackend};
use rnic_device::{MacAddress, RnicConfig};

use crate::error::ServerError;

/// rnic-device-server: serves one emulated RNIC over the vfio-user protocol.
///
/// Start it, then start the client: QEMU >= 10.1 with guest RAM as
/// `-object memory-backend-memfd,id=mem,size=...,share=on -machine ...,memory-backend=mem`
/// and `-device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"PATH"}}'`.
/// The server serves one client session and exits when the client disconnects
/// (docs/vfio-user.md).
#[derive(Debug, Parser)]
#[command(name = "rnic-device-server", version)]
pub struct Options {
    /// Unix socket to listen on (a stale socket a killed server left is replaced).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The port's MAC address after reset.
    #[arg(long, value_name = "MAC", default_value = "02:7e:57:00:00:01")]
    pub mac: MacAddress,
    /// The port's IPv4 address for RoCEv2 after reset.
    #[arg(long, value_name = "ADDR", default_value = "10.77.0.1")]
    pub ipv4: Ipv4Addr,
    /// The port's IPv6 address for RoCEv2 after reset (unicast; default none: the port
    /// has no IPv6 address until the driver sets one).
    #[arg(long, value_name = "ADDR")]
    pub ipv6: Option<Ipv6Addr>,
    /// The wire: `none`, `loopback`, `unix:LOCAL_PATH,PEER_PATH` (Unix datagram
    /// sockets) or `udp:LOCAL_ADDR:PORT,PEER_ADDR:PORT`.
    #[arg(long, value_name = "WIRE", default_value = "none")]
    pub wire: WireSpec,
    /// Record every frame that crosses the wire into this pcap file (needs a wire).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Fault plan armed when the device is built: the TOML (or JSON, for a `.json`
    /// name) plans of `rnic-vmm --rnic faults=` (vmm/README.md).
    #[arg(long, value_name = "PLANFILE")]
    pub faults: Option<PathBuf>,
    /// Serve the control API (docs/api/openapi.yaml: statistics, faults, fault log,
    /// link, fatal) on this Unix socket, owner-only (0600), removed on exit;
    /// `rnicctl --socket PATH` and curl speak it.
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,
    /// The RNIC's id in the control API (`?rnic=ID`): 1..=32 of A-Z a-z 0-9 - _.
    #[arg(long, value_name = "ID", default_value = "rnic0")]
    pub id: String,
}

/// Where the port's frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireSpec {
    /// No wire: transmitted frames are dropped and counted.
    None,
    /// Frames come back to the same port.
    Loopback,
    /// Unix datagram sockets: our path, the peer's path.
    Unix(PathBuf, PathBuf),
    /// UDP: our address, the peer's address.
    Udp(SocketAddr, SocketAddr),
}

/// Why a `--wire` value is not understood.
#[derive(Debug, thiserror::Error)]
#[error("bad --wire value '{0}': use none, loopback, unix:LOCAL_PATH,PEER_PATH or udp:LOCAL_ADDR:PORT,PEER_ADDR:PORT")]
pub struct WireSpecError(String);

impl FromStr for WireSpec {
    type Err = WireSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || WireSpecError(s.to_string());
        match s {
            "none" => Ok(WireSpec::None),
            "loopback" => Ok(WireSpec::Loopback),
            _ => {
                if let Some(rest) = s.strip_prefix("unix:") {
                    let (a, b) = rest.split_once(',').ok_or_else(err)?;
                    if a.is_empty() || b.is_empty() {
                        return Err(err());
                    }
                    Ok(WireSpec::Unix(a.into(), b.into()))
                } else if let Some(rest) = s.strip_prefix("udp:") {
                    let (a, b) = rest.split_once(',').ok_or_else(err)?;
                    Ok(WireSpec::Udp(
                        a.parse().map_err(|_| err())?,
                        b.parse().map_err(|_| err())?,
                    ))
                } else {
                    Err(err())
                }
            }
        }
    }
}

impl std::fmt::Display for WireSpec {
    /// The `--wire` syntax that parses back to this value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireSpec::None => write!(f, "none"),
            WireSpec::Loopback => write!(f, "loopback"),
            WireSpec::Unix(a, b) => write!(f, "unix:{},{}", a.display(), b.display()),
            WireSpec::Udp(a, b) => write!(f, "udp:{a},{b}"),
        }
    }
}

impl Options {
    /// The device configuration the options ask for; a multicast MAC is refused
    /// (a port address must be unicast).
    pub fn device_config(&self) -> Result<RnicConfig, ServerError> {
        check_id(&self.id).map_err(|e| ServerError::BadId(format!("--id: {e}")))?;
        if self.mac.0[0] & 1 != 0 {
            return Err(ServerError::MulticastMac(self.mac.to_string()));
        }
        if let Some(ip) = self.ipv6 {
            if ip.is_multicast() || ip.is_unspecified() {
                return Err(ServerError::BadIpv6(ip));
            }
        }
        Ok(RnicConfig {
            mac: self.mac,
            ip: self.ipv4,
            ipv6: self.ipv6,
            ..RnicConfig::default()
        })
    }

    /// The fault plan `--faults` names, read and checked (empty without one).
    pub fn fault_plan(&self) -> Result<Vec<PlannedFault>, ServerError> {
        let Some(path) = &self.faults else {
            return Ok(Vec::new());
        };
        let faults = load_plan(path)?;
        crate::backend::check_plan(&faults).map_err(|source| ServerError::FaultRule {
            path: path.clone(),
            source,
        })?;
        Ok(faults)
    }

    /// Opens the wire (and its pcap capture) the options ask for.
    pub fn open_wire(&self) -> Result<Option<Box<dyn WireBackend>>, ServerError> {
        let spec = self.wire.to_string();
        let base: Box<dyn WireBackend> = match &self.wire {
            WireSpec::None => {
                return match &self.pcap {
                    Some(_) => Err(ServerError::PcapWithoutWire),
                    None => Ok(None),
                }
            }
            WireSpec::Loopback => Box::new(LoopbackWire::new()),
            WireSpec::Unix(local, peer) => Box::new(
                UnixWire::bind(local, peer).map_err(|source| ServerError::Wire { spec, source })?,
            ),
            WireSpec::Udp(local, peer) => Box::new(
                UdpWire::bind(*local, *peer)
                    .map_err(|source| ServerError::Wire { spec, source })?,
            ),
        };
        Ok(Some(match &self.pcap {
            Some(path) => {
                Box::new(
                    CapturingWire::create(base, path).map_err(|source| ServerError::Pcap {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => base,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_specs_parse_and_bad_ones_name_the_syntax() {
        assert_eq!("none".parse::<WireSpec>().unwrap(), WireSpec::None);
        assert_eq!("loopback".parse::<WireSpec>().unwrap(), WireSpec::Loopback);
        assert_eq!(
            "unix:/tmp/a,/tmp/b".parse::<WireSpec>().unwrap(),
            WireSpec::Unix("/tmp/a".into(), "/tmp/b".into())
        );
        assert_eq!(
            "udp:127.0.0.1:4000,127.0.0.1:4001"
                .parse::<WireSpec>()
                .unwrap(),
            WireSpec::Udp(
                "127.0.0.1:4000".parse().unwrap(),
                "127.0.0.1:4001".parse().unwrap()
            )
        );
        for good in [
            "none",
            "loopback",
            "unix:/tmp/a,/tmp/b",
            "udp:127.0.0.1:1,127.0.0.1:2",
        ] {
            assert_eq!(good.parse::<WireSpec>().unwrap().to_string(), good);
        }
        for bad in ["", "unix:/a", "unix:,/b", "udp:x,y", "tcp:1,2"] {
            let e = bad.parse::<WireSpec>().unwrap_err().to_string();
            assert!(e.contains("loopback") && e.contains("udp:"), "{e}");
        }
    }

    #[test]
    fn options_give_the_device_config_and_refuse_pcap_without_wire() {
        let o = Options::try_parse_from([
            "rnic-device-server",
            "--socket",
            "/tmp/x.sock",
            "--mac",
            "02:00:00:00:00:07",
            "--ipv4",
            "10.0.0.7",
            "--pcap",
            "/tmp/x.pcap",
        ])
        .unwrap();
        let c = o.device_config().unwrap();
        assert_eq!(c.mac.to_string(), "02:00:00:00:00:07");
        assert_eq!(c.ip, Ipv4Addr::new(10, 0, 0, 7));
        assert!(matches!(o.open_wire(), Err(ServerError::PcapWithoutWire)));
        assert!(
            Options::try_parse_from(["rnic-device-server", "--socket", "s", "--mac", "zz"])
                .is_err()
        );
        let v6 =
            Options::try_parse_from(["rnic-device-server", "--socket", "s", "--ipv6", "fd00::9"])
                .unwrap();
        assert_eq!(
            v6.device_config().unwrap().ipv6,
            Some("fd00::9".parse().unwrap())
        );
        assert_eq!(c.ipv6, None, "no IPv6 address unless given");
        for bad in ["ff02::1", "::"] {
            let o = Options::try_parse_from(["rnic-device-server", "--socket", "s", "--ipv6", bad])
                .unwrap();
            let e = o.device_config().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--ipv6 {bad} ")), "{e}");
        }
        let bad_id =
            Options::try_parse_from(["rnic-device-server", "--socket", "s", "--id", "a/b"])
                .unwrap();
        let e = bad_id.device_config().unwrap_err().to_string();
        assert!(e.starts_with("--id: RNIC id `a/b` must be"), "{e}");
    }

    #[test]
    fn fault_plans_are_read_checked_and_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("rnic-server-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let with_plan = |plan: &std::path::Path| {
            Options::try_parse_from([
                "rnic-device-server",
                "--socket",
                "s",
                "--faults",
                plan.to_str().unwrap(),
            ])
            .unwrap()
        };
        let good = dir.join("p.json");
        std::fs::write(
            &good,
            r#"{"fault": [{"site": "link", "action": "link_down", "times": 1}]}"#,
        )
        .unwrap();
        let faults = with_plan(&good).fault_plan().unwrap();
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].times, Some(1));
        let bad = dir.join("p.toml");
        std::fs::write(&bad, "[[fault]]\nsite = \"link\"\naction = \"drop\"\n").unwrap();
        let e = with_plan(&bad).fault_plan().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "fault plan {}: line 1: field `action`",
                bad.display()
            )),
            "{e}"
        );
        let many = dir.join("many.toml");
        let entry = "[[fault]]\nsite = \"link\"\naction = \"link_up\"\n";
        std::fs::write(&many, entry.repeat(rnic_device::fault::MAX_RULES + 1)).unwrap();
        let e = with_plan(&many).fault_plan().unwrap_err().to_string();
        assert!(
            e.contains("fault plan") && e.contains(&rnic_device::fault::MAX_RULES.to_string()),
            "{e}"
        );
        assert!(
            Options::try_parse_from(["rnic-device-server", "--socket", "s"])
                .unwrap()
                .fault_plan()
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
