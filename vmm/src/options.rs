//! RNIC settings: the `--rnic KEY=VALUE,...` syntax (in Cloud Hypervisor's style)
//! and the JSON schema shared by `--config FILE` and the control API's `GET /v1/vm`.
//!
//! Keys: `id`, `mac`, `ipv4`, `ipv6`, `wire` (`none`, `unix:LOCAL,PEER`, `udp:LOCAL,PEER`,
//! `pair:OTHER_ID`: an in-process wire to another RNIC of the same VM),
//! `pcap` (file the wire's frames are captured to) and `faults` (a fault plan file,
//! see [`crate::faultplan`]). A comma-separated piece without `=` continues the
//! value before it, so `wire=udp:127.0.0.1:7000,127.0.0.1:7001` works.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use rnic_device::MacAddress;
use serde::{Deserialize, Serialize};

/// Most RNICs one VM can have (PCI devices 1..=16 of bus 0).
pub const MAX_RNICS: usize = 16;
pub use rnic_control::api::MAX_ID_LEN;

/// Where an RNIC's wire goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WireOption {
    /// No wire: frames the device sends are dropped, nothing arrives.
    None,
    /// A Unix datagram wire: bind `local`, send to `peer`.
    Unix {
        /// This end's socket path.
        local: PathBuf,
        /// The other end's socket path.
        peer: PathBuf,
    },
    /// A UDP wire: bind `local`, send to `peer`.
    Udp {
        /// This end's address.
        local: SocketAddr,
        /// The other end's address.
        peer: SocketAddr,
    },
    /// An in-process wire to another RNIC of the same VM, which must name this one
    /// back (`pair:THIS_ID`): what one sends, the other receives.
    Pair {
        /// The other RNIC's id.
        peer: String,
    },
}

impl std::fmt::Display for WireOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireOption::None => f.write_str("none"),
            WireOption::Unix { local, peer } => {
                write!(f, "unix:{},{}", local.display(), peer.display())
            }
            WireOption::Udp { local, peer } => write!(f, "udp:{local},{peer}"),
            WireOption::Pair { peer } => write!(f, "pair:{peer}"),
        }
    }
}

impl From<WireOption> for String {
    fn from(w: WireOption) -> String {
        w.to_string()
    }
}

impl TryFrom<String> for WireOption {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// Splits `LOCAL,PEER` (both non-empty).
fn wire_ends<'a>(text: &str, rest: &'a str) -> Result<(&'a str, &'a str), String> {
    rest.split_once(',')
        .filter(|(local, peer)| !local.is_empty() && !peer.is_empty())
        .ok_or_else(|| format!("wire `{text}` needs two ends: LOCAL,PEER"))
}

impl std::str::FromStr for WireOption {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "none" {
            Ok(WireOption::None)
        } else if let Some(rest) = text.strip_prefix("unix:") {
            let (local, peer) = wire_ends(text, rest)?;
            Ok(WireOption::Unix {
                local: local.into(),
                peer: peer.into(),
            })
        } else if let Some(rest) = text.strip_prefix("udp:") {
            let (local, peer) = wire_ends(text, rest)?;
            let address = |a: &str| {
                a.parse::<SocketAddr>()
                    .map_err(|_| format!("`{a}` in wire `{text}` is not an IP:PORT address"))
            };
            Ok(WireOption::Udp {
                local: address(local)?,
                peer: address(peer)?,
            })
        } else if let Some(peer) = text.strip_prefix("pair:") {
            if peer.is_empty() || peer.contains(',') {
                return Err(format!(
                    "wire `{text}` needs one RNIC id after `pair:` (pair:OTHER_ID)"
                ));
            }
            Ok(WireOption::Pair { peer: peer.into() })
        } else {
            Err(format!(
                "wire `{text}` is not one of none, unix:LOCAL,PEER, udp:LOCAL,PEER, pair:OTHER_ID"
            ))
        }
    }
}

/// One RNIC's settings, as given (absent keys take the defaults of its position).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnicOptions {
    /// Name used by the control API (`rnic0`, `rnic1`, ... by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// MAC address (default `02:7e:57:00:00:NN`, NN = position + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// IPv4 address for RoCEv2 (default `10.77.0.NN`, NN = position + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address for RoCEv2 (default none: the port has no IPv6 address until the
    /// driver sets one with `SET_PORT_ADDR6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The wire (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireOption>,
    /// pcap file the wire's frames are written to (needs a wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap: Option<PathBuf>,
    /// Fault plan file loaded at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<PathBuf>,
    /// Unix socket of a running `rnic-device-server`: the RNIC is served by that
    /// process over vfio-user instead of being emulated in the monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

/// An RNIC's settings with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RnicSettings {
    /// Name used by the control API.
    pub id: String,
    /// PCI device number on bus 0 (`00:NN.0`).
    pub pci_device: u8,
    /// MAC address.
    #[serde(serialize_with = "display")]
    pub mac: MacAddress,
    /// IPv4 address for RoCEv2.
    pub ipv4: Ipv4Addr,
    /// IPv6 address for RoCEv2, if the port has one at reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The wire.
    pub wire: WireOption,
    /// pcap capture file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<PathBuf>,
    /// Fault plan file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<PathBuf>,
    /// vfio-user socket of the process that serves this RNIC (`None`: emulated in
    /// the monitor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The JSON document of `--config FILE`: the same `rnics` entries as `GET /v1/vm`
/// reports (`pci_device` is reported, not accepted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// RNICs in PCI order.
    #[serde(default)]
    pub rnics: Vec<RnicOptions>,
}

/// Refuses text with control characters (newlines, escapes) before any of it is
/// echoed in an error message: messages stay one line and never carry terminal
/// escapes. The error names the first such character by position, not by echo.
fn refuse_control_characters(what: &str, text: &str) -> Result<(), String> {
    match text.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(format!(
            "{what}: the value has a control character ({:?}) at byte {at}; \
             settings are plain text without newlines or escapes",
            c
        )),
        None => Ok(()),
    }
}

/// Parses one `--rnic` value (`""` = all defaults).
pub fn parse_rnic_option(text: &str) -> Result<RnicOptions, String> {
    refuse_control_characters("--rnic", text)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in text.split(',').filter(|p| !p.is_empty()) {
        match piece.split_once('=') {
            Some((key, value)) => pairs.push((key.trim().to_string(), value.to_string())),
            None => match pairs.last_mut() {
                Some((_, value)) => {
                    value.push(',');
                    value.push_str(piece);
                }
                None => return Err(format!("--rnic `{piece}` is not KEY=VALUE")),
            },
        }
    }
    let mut options = RnicOptions::default();
    for (key, value) in pairs {
        let twice = || format!("--rnic: key `{key}` is given twice");
        let empty = || format!("--rnic: key `{key}` needs a value");
        if value.is_empty() {
            return Err(empty());
        }
        match key.as_str() {
            "id" => set_once(&mut options.id, value, twice)?,
            "mac" => set_once(&mut options.mac, value, twice)?,
            "ipv4" => {
                let ip = value
                    .parse()
                    .map_err(|_| format!("--rnic: ipv4 `{value}` is not an IPv4 address"))?;
                set_once(&mut options.ipv4, ip, twice)?
            }
            "ipv6" => {
                let ip = value
                    .parse()
                    .map_err(|_| format!("--rnic: ipv6 `{value}` is not an IPv6 address"))?;
                set_once(&mut options.ipv6, ip, twice)?
            }
            "wire" => set_once(&mut options.wire, value.parse()?, twice)?,
            "pcap" => set_once(&mut options.pcap, value.into(), twice)?,
            "faults" => set_once(&mut options.faults, value.into(), twice)?,
            "socket" => set_once(&mut options.socket, value.into(), twice)?,
            other => {
                return Err(format!(
                "--rnic: unknown key `{other}` (keys: id, mac, ipv4, ipv6, wire, pcap, faults, socket)"
            ))
            }
        }
    }
    Ok(options)
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    twice: impl FnOnce() -> String,
) -> Result<(), String> {
    if slot.is_some() {
        return Err(twice());
    }
    *slot = Some(value);
    Ok(())
}

/// Fills in the defaults of each RNIC's position and checks the set: at most
/// [`MAX_RNICS`], unique ids, MACs and IPv4 addresses, pcap only with a wire.
pub fn resolve(options: &[RnicOptions]) -> Result<Vec<RnicSettings>, String> {
    if options.len() > MAX_RNICS {
        return Err(format!(
            "{} RNICs given; at most {MAX_RNICS} are supported",
            options.len()
        ));
    }
    let mut out: Vec<RnicSettings> = Vec::with_capacity(options.len());
    for (position, o) in options.iter().enumerate() {
        let number = position as u8 + 1;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let texts = [
            ("id", o.id.clone()),
            ("mac", o.mac.clone()),
            ("wire", o.wire.as_ref().map(|w| w.to_string())),
            ("pcap", path(&o.pcap)),
            ("faults", path(&o.faults)),
            ("socket", path(&o.socket)),
        ];
        for (key, text) in texts {
            if let Some(text) = text {
                refuse_control_characters(&format!("RNIC {number} `{key}`"), &text)?;
            }
        }
        let id = o.id.clone().unwrap_or_else(|| format!("rnic{position}"));
        if o.socket.is_some() {
            let device_keys = [
                ("mac", o.mac.is_some()),
                ("ipv4", o.ipv4.is_some()),
                ("ipv6", o.ipv6.is_some()),
                ("wire", o.wire.is_some()),
                ("pcap", o.pcap.is_some()),
                ("faults", o.faults.is_some()),
            ];
            if let Some((key, _)) = device_keys.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "RNIC {id}: `{key}` cannot go with `socket`: the device process owns it \
                     (give it to rnic-device-server instead)"
                ));
            }
        }
        rnic_control::api::check_id(&id)?;
        let mac = match &o.mac {
            Some(text) => text
                .parse::<MacAddress>()
                .map_err(|_| format!("RNIC {id}: mac `{text}` is not like 02:7e:57:00:00:01"))?,
            None => MacAddress([0x02, 0x7E, 0x57, 0x00, 0x00, number]),
        };
        if mac.0[0] & 1 != 0 {
            return Err(format!("RNIC {id}: mac {mac} is a multicast address"));
        }
        if let Some(ip) = o.ipv6 {
            check_port_ipv6(ip).map_err(|why| format!("RNIC {id}: ipv6 {ip} {why}"))?;
        }
        let settings = RnicSettings {
            id,
            pci_device: crate::pci::FIRST_RNIC_DEVICE + position as u8,
            mac,
            ipv4: o.ipv4.unwrap_or(Ipv4Addr::new(10, 77, 0, number)),
            ipv6: o.ipv6,
            wire: o.wire.clone().unwrap_or(WireOption::None),
            pcap: o.pcap.clone(),
            faults: o.faults.clone(),
            socket: o.socket.clone(),
        };
        if settings.pcap.is_some() && settings.wire == WireOption::None {
            return Err(format!(
                "RNIC {}: pcap needs a wire (wire=unix:..., wire=udp:... or wire=pair:...)",
                settings.id
            ));
        }
        for earlier in &out {
            let clash = if earlier.id == settings.id {
                Some("id")
            } else if earlier.mac == settings.mac {
                Some("mac")
            } else if earlier.ipv4 == settings.ipv4 {
                Some("ipv4")
            } else if earlier.ipv6.is_some() && earlier.ipv6 == settings.ipv6 {
                Some("ipv6")
            } else {
                None
            };
            if let Some(what) = clash {
                return Err(format!(
                    "RNICs {} and {} have the same {what}; give each its own",
                    earlier.id, settings.id
                ));
            }
        }
        out.push(settings);
    }
    check_pairs(&out)?;
    Ok(out)
}

/// Why `ip` cannot be a port's IPv6 address (docs/device-spec.md `SET_PORT_ADDR6`: a
/// multicast address is refused; all zero means none), if it cannot.
pub fn check_port_ipv6(ip: Ipv6Addr) -> Result<(), &'static str> {
    if ip.is_multicast() {
        Err("is a multicast address; give a unicast one, e.g. fd00:4d::1")
    } else if ip.is_unspecified() {
        Err("is the unspecified address; leave ipv6 out for a port without one")
    } else {
        Ok(())
    }
}

/// Checks the `wire=pair:OTHER_ID` settings of a resolved set: each names another
/// RNIC emulated in this monitor, which names it back, and no RNIC is named by two;
/// at most one of the two sets `pcap` (one capture sees both directions).
fn check_pairs(rnics: &[RnicSettings]) -> Result<(), String> {
    for rnic in rnics {
        let WireOption::Pair { peer } = &rnic.wire else {
            continue;
        };
        let id = &rnic.id;
        if peer == id {
            return Err(format!(
                "RNIC {id}: wire=pair:{peer} names itself; a pair wire joins two RNICs \
                 (for a wire that sends frames back, use wire=unix:PATH,PATH)"
            ));
        }
        let Some(other) = rnics.iter().find(|r| &r.id == peer) else {
            let ids: Vec<&str> = rnics.iter().map(|r| r.id.as_str()).collect();
            return Err(format!(
                "RNIC {id}: wire=pair:{peer} names no RNIC of this VM (ids: {})",
                ids.join(", ")
            ));
        };
        if other.socket.is_some() {
            return Err(format!(
                "RNIC {id}: wire=pair:{peer}, but {peer} is served by another process \
                 (socket=); pair it with an RNIC emulated here"
            ));
        }
        let namers: Vec<&str> = rnics
            .iter()
            .filter(|r| matches!(&r.wire, WireOption::Pair { peer: p } if p == peer))
            .map(|r| r.id.as_str())
            .collect();
        if let [first, second, ..] = namers.as_slice() {
            return Err(format!(
                "RNICs {first} and {second} both give wire=pair:{peer}; a pair wire joins \
                 exactly two RNICs"
            ));
        }
        if other.wire != (WireOption::Pair { peer: id.clone() }) {
            return Err(format!(
                "RNIC {id}: wire=pair:{peer}, but {peer} has wire={}; give {peer} \
                 wire=pair:{id} (both ends name each other)",
                other.wire
            ));
        }
        if rnic.pcap.is_some() && other.pcap.is_some() {
            return Err(format!(
                "RNICs {id} and {peer} share a pair wire and both set pcap; give pcap to \
                 one of them: its capture holds both directions"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_without_being_echoed() {
        // Found by the `config` fuzz target: a newline in a value came back inside
        // the one-line error.
        let e = parse_rnic_option("ipv4=10.1\n\x1b[2J").unwrap_err();
        assert!(!e.contains('\n') && !e.contains('\x1b'), "{e}");
        assert!(e.contains("control character"), "{e}");
        let file: ConfigFile = serde_json::from_str(r#"{"rnics": [{"id": "a\nb"}]}"#).unwrap();
        let e = resolve(&file.rnics).unwrap_err();
        assert!(!e.contains('\n') && e.contains("`id`"), "{e}");
    }

    #[test]
    fn rnic_option_keys_and_continued_values() {
        let o = parse_rnic_option(
            "id=left,mac=02:00:00:00:00:0a,ipv4=10.0.0.2,wire=udp:127.0.0.1:7000,127.0.0.1:7001,pcap=/tmp/l.pcap,faults=p.toml",
        )
        .unwrap();
        assert_eq!(o.id.as_deref(), Some("left"));
        assert_eq!(o.mac.as_deref(), Some("02:00:00:00:00:0a"));
        assert_eq!(o.ipv4, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(
            o.wire,
            Some(WireOption::Udp {
                local: "127.0.0.1:7000".parse().unwrap(),
                peer: "127.0.0.1:7001".parse().unwrap()
            })
        );
        assert_eq!(o.pcap, Some("/tmp/l.pcap".into()));
        assert_eq!(o.faults, Some("p.toml".into()));
        let unix = parse_rnic_option("wire=unix:/run/a.sock,/run/b.sock").unwrap();
        assert_eq!(
            unix.wire.unwrap().to_string(),
            "unix:/run/a.sock,/run/b.sock"
        );
        assert_eq!(parse_rnic_option("").unwrap(), RnicOptions::default());
    }

    #[test]
    fn bad_rnic_options_say_which_key() {
        for (text, says) in [
            ("colour=red", "unknown key `colour`"),
            ("id=a,id=b", "`id` is given twice"),
            ("ipv4=10.0.0", "not an IPv4 address"),
            ("wire=tcp:x", "not one of none"),
            ("wire=udp:127.0.0.1:1", "needs two ends"),
            ("wire=udp:localhost:1,127.0.0.1:2", "not an IP:PORT"),
            ("mac=", "needs a value"),
            ("justtext", "not KEY=VALUE"),
        ] {
            let e = parse_rnic_option(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn defaults_follow_the_position_and_clashes_are_refused() {
        let two = resolve(&[RnicOptions::default(), RnicOptions::default()]).unwrap();
        assert_eq!(two[0].id, "rnic0");
        assert_eq!(two[1].id, "rnic1");
        assert_eq!(two[1].pci_device, 2);
        assert_eq!(two[1].mac.to_string(), "02:7e:57:00:00:02");
        assert_eq!(two[1].ipv4, Ipv4Addr::new(10, 77, 0, 2));
        let same_id = RnicOptions {
            id: Some("x".into()),
            ..Default::default()
        };
        let e = resolve(&[same_id.clone(), same_id]).unwrap_err();
        assert!(e.contains("same id"), "{e}");
        let mac = |m: &str| RnicOptions {
            mac: Some(m.into()),
            ..Default::default()
        };
        assert!(resolve(&[mac("02:7e:57:00:00:02"), RnicOptions::default()])
            .unwrap_err()
            .contains("same mac"));
        assert!(resolve(&[mac("03:00:00:00:00:01")])
            .unwrap_err()
            .contains("multicast"));
        let pcap_only = RnicOptions {
            pcap: Some("x.pcap".into()),
            ..Default::default()
        };
        assert!(resolve(&[pcap_only]).unwrap_err().contains("needs a wire"));
        let bad_id = RnicOptions {
            id: Some("a/b".into()),
            ..Default::default()
        };
        assert!(resolve(&[bad_id]).is_err());
        assert!(resolve(&vec![RnicOptions::default(); MAX_RNICS + 1]).is_err());
    }

    #[test]
    fn ipv6_is_optional_unicast_and_unique() {
        let o = parse_rnic_option("ipv6=fd00:4d::1").unwrap();
        assert_eq!(o.ipv6, Some("fd00:4d::1".parse().unwrap()));
        let s = resolve(&[o.clone(), RnicOptions::default()]).unwrap();
        assert_eq!(s[0].ipv6, Some("fd00:4d::1".parse().unwrap()));
        assert_eq!(s[1].ipv6, None, "no IPv6 address unless given");
        let json = serde_json::to_value(&s[0]).unwrap();
        assert_eq!(json["ipv6"], "fd00:4d::1");
        assert!(serde_json::to_value(&s[1]).unwrap().get("ipv6").is_none());
        for (text, says) in [
            ("ipv6=10.0.0.1", "not an IPv6 address"),
            ("ipv6=fd00::1,ipv6=fd00::2", "`ipv6` is given twice"),
        ] {
            let e = parse_rnic_option(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let e = resolve(&[parse_rnic_option("ipv6=ff02::1").unwrap()]).unwrap_err();
        assert!(
            e.starts_with("RNIC rnic0: ipv6 ff02::1 is a multicast address"),
            "{e}"
        );
        let e = resolve(&[parse_rnic_option("ipv6=::").unwrap()]).unwrap_err();
        assert!(e.contains("unspecified"), "{e}");
        let e = resolve(&[o.clone(), o]).unwrap_err();
        assert!(e.contains("have the same ipv6"), "{e}");
        let e = resolve(&[parse_rnic_option("socket=/s,ipv6=fd00::1").unwrap()]).unwrap_err();
        assert!(e.contains("`ipv6` cannot go with `socket`"), "{e}");
        let c: ConfigFile = serde_json::from_str(r#"{"rnics": [{"ipv6": "fd00::7"}]}"#).unwrap();
        assert_eq!(c.rnics[0].ipv6, Some("fd00::7".parse().unwrap()));
    }

    #[test]
    fn socket_rnics_leave_device_settings_to_the_server() {
        let o = parse_rnic_option("id=far,socket=/run/rnic.sock").unwrap();
        assert_eq!(o.socket, Some("/run/rnic.sock".into()));
        let s = resolve(&[RnicOptions::default(), o]).unwrap();
        assert_eq!(s[1].socket, Some("/run/rnic.sock".into()));
        assert_eq!(s[1].pci_device, 2);
        assert_eq!(s[0].socket, None);
        let e = resolve(&[parse_rnic_option("socket=/s,wire=none").unwrap()]).unwrap_err();
        assert!(e.contains("`wire` cannot go with `socket`"), "{e}");
        assert!(parse_rnic_option("socket=/a,socket=/b").is_err());
    }

    fn pair_set(texts: &[&str]) -> Result<Vec<RnicSettings>, String> {
        let options: Vec<RnicOptions> = texts
            .iter()
            .map(|t| parse_rnic_option(t).unwrap())
            .collect();
        resolve(&options)
    }

    #[test]
    fn pair_wires_join_two_rnics_that_name_each_other() {
        let o = parse_rnic_option("wire=pair:right").unwrap();
        assert_eq!(
            o.wire,
            Some(WireOption::Pair {
                peer: "right".into()
            })
        );
        assert_eq!(o.wire.unwrap().to_string(), "pair:right");
        for (text, says) in [
            ("wire=pair:", "needs one RNIC id"),
            ("wire=pair:a,b", "needs one RNIC id"),
        ] {
            let e = parse_rnic_option(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        // Default ids work too, and pcap on one end is accepted.
        let s = pair_set(&["wire=pair:rnic1,pcap=/tmp/pair.pcap", "wire=pair:rnic0"]).unwrap();
        assert_eq!(s[0].wire.to_string(), "pair:rnic1");
        assert_eq!(s[1].wire.to_string(), "pair:rnic0");
        assert_eq!(s[0].pcap, Some("/tmp/pair.pcap".into()));
        // A third RNIC with its own wire does not disturb the pair.
        pair_set(&["id=a,wire=pair:b", "id=b,wire=pair:a", "id=c"]).unwrap();
    }

    #[test]
    fn bad_pair_wires_are_one_line_errors_naming_the_rnics() {
        for (texts, says) in [
            (
                &["id=a,wire=pair:a", "id=b"][..],
                "RNIC a: wire=pair:a names itself",
            ),
            (
                &["id=a,wire=pair:x", "id=b"][..],
                "RNIC a: wire=pair:x names no RNIC of this VM (ids: a, b)",
            ),
            (
                &["id=a,wire=pair:b", "id=b"][..],
                "but b has wire=none; give b wire=pair:a",
            ),
            (
                &["id=a,wire=pair:b", "id=b,wire=pair:c", "id=c,wire=pair:b"][..],
                "RNICs a and c both give wire=pair:b",
            ),
            (
                &["id=a,wire=pair:b", "id=b,wire=pair:a", "id=c,wire=pair:b"][..],
                "RNICs a and c both give wire=pair:b",
            ),
            (
                &["id=a,wire=pair:b,pcap=/x", "id=b,wire=pair:a,pcap=/y"][..],
                "both set pcap",
            ),
            (
                &["id=a,wire=pair:b", "id=b,socket=/run/s"][..],
                "b is served by another process",
            ),
        ] {
            let e = pair_set(texts).unwrap_err();
            assert!(e.contains(says), "{texts:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn config_file_uses_the_same_keys() {
        let c: ConfigFile =
            serde_json::from_str(r#"{"rnics": [{"id": "a", "wire": "unix:/x,/y"}, {}]}"#).unwrap();
        assert_eq!(c.rnics.len(), 2);
        assert_eq!(c.rnics[0].wire.as_ref().unwrap().to_string(), "unix:/x,/y");
        let e = serde_json::from_str::<ConfigFile>(r#"{"rnics": [{"colour": 1}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e =
            serde_json::from_str::<ConfigFile>(r#"{"rnics": [{"wire": "tcp:x"}]}"#).unwrap_err();
        assert!(e.to_string().contains("not one of none"), "{e}");
        let c: ConfigFile =
            serde_json::from_str(r#"{"rnics": [{"wire": "pair:rnic1"}, {"wire": "pair:rnic0"}]}"#)
                .unwrap();
        assert_eq!(resolve(&c.rnics).unwrap()[1].wire.to_string(), "pair:rnic0");
    }
}
