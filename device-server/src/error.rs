//! Errors of the device server; each message is one line that says what to do.

use std::path::PathBuf;

use rnic_device::wire::pcap::PcapError;
use rnic_device::wire::WireError;

/// Why the server could not start or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket path exists and is not a stale socket.
    #[error("{0} exists already and is not a stale socket (another server serves it, or it is not a socket); choose another --socket path")]
    SocketExists(PathBuf),
    /// Binding or listening on the socket failed.
    #[error("cannot listen on {path}: {source}; check that its directory exists and is writable")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: std::io::Error,
    },
    /// The wire could not be opened.
    #[error("cannot open the wire {spec}: {source}")]
    Wire {
        /// The wire as given.
        spec: String,
        /// What the wire said.
        #[source]
        source: WireError,
    },
    /// The pcap file could not be created.
    #[error("cannot create the pcap file {path}: {source}")]
    Pcap {
        /// The pcap path.
        path: PathBuf,
        /// What the writer said.
        #[source]
        source: PcapError,
    },
    /// `--mac` names a multicast address.
    #[error("--mac {0} is a multicast address; a port address must be unicast (first byte even), e.g. 02:7e:57:00:00:01")]
    MulticastMac(String),
    /// `--ipv6` names a multicast or the unspecified address.
    #[error("--ipv6 {0} cannot be a port address: give a unicast address (e.g. fd00:4d::1), or leave --ipv6 out")]
    BadIpv6(std::net::Ipv6Addr),
    /// `--pcap` was given without a wire.
    #[error("--pcap needs a wire to capture: add --wire loopback (or unix:..., udp:...)")]
    PcapWithoutWire,
    /// Accepting the client failed.
    #[error("accepting the vfio-user client on {path} failed: {source}")]
    Accept {
        /// The socket path.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: std::io::Error,
    },
    /// The session with the client broke off (not a clean disconnect).
    #[error("the vfio-user session ended with an error: {0}; the client probably died or sent a broken stream")]
    Session(#[source] std::io::Error),
    /// `--id` is not a valid RNIC id.
    #[error("{0}")]
    BadId(String),
    /// The `--faults` plan cannot be read or is not valid.
    #[error(transparent)]
    FaultPlan(#[from] rnic_control::faultplan::PlanFileError),
    /// The device's fault engine refuses a rule of the `--faults` plan.
    #[error("fault plan {path}: {source}")]
    FaultRule {
        /// The plan file.
        path: PathBuf,
        /// The engine's reason.
        #[source]
        source: rnic_device::fault::FaultError,
    },
    /// The `--api-socket` could not be served.
    #[error("control API: {0}")]
    Api(#[from] rnic_control::api::ApiError),
    /// An internal thread or socket of the server could not be set up.
    #[error("setting up the server failed: {0}")]
    Setup(#[source] std::io::Error),
}
