//! Structure test of `guest-driver/rnic-miniport/rnic.inf`: the sections Windows' setup needs
//! for an NDIS miniport exist and reference each other, the hardware ID is the device's PCI ID
//! (from the device contract), the NDIS interface keywords match the values the driver reports
//! in its general attributes (from the ABI crate), and every string token is defined.

use std::path::Path;

use artifact_check::inf::Inf;

fn rnic_inf() -> Inf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rnic-miniport/rnic.inf");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Inf::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn one(inf: &Inf, section: &str, key: &str) -> String {
    let values = inf
        .value(section, key)
        .unwrap_or_else(|| panic!("[{section}] has no {key}"));
    assert_eq!(values.len(), 1, "[{section}] {key} = {values:?}");
    values[0].clone()
}

fn number(inf: &Inf, section: &str, key: &str) -> u64 {
    let v = one(inf, section, key);
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|e| panic!("[{section}] {key} = {v}: {e}"))
}

/// The install section the models section names for the device's hardware ID.
fn install_section(inf: &Inf) -> String {
    let manufacturer = inf.section("Manufacturer").expect("[Manufacturer]");
    assert_eq!(manufacturer.len(), 1, "one manufacturer");
    let values = &manufacturer[0].values;
    assert!(
        values[1..]
            .iter()
            .any(|d| d.eq_ignore_ascii_case("NTamd64")),
        "[Manufacturer] must decorate its models for NTamd64: {values:?}"
    );
    let models = format!("{}.NTamd64", values[0]);
    let lines = inf
        .section(&models)
        .unwrap_or_else(|| panic!("models section [{models}] missing"));
    let hardware_id = format!(
        "PCI\\VEN_{:04X}&DEV_{:04X}",
        rnic_contract::pci::VENDOR_ID,
        rnic_contract::pci::DEVICE_ID
    );
    let line = lines
        .iter()
        .find(|l| {
            l.values[1..]
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&hardware_id))
        })
        .unwrap_or_else(|| {
            panic!("[{models}] does not list the device's hardware ID {hardware_id}")
        });
    line.values[0].clone()
}

#[test]
fn version_section_declares_a_net_class_driver() {
    let inf = rnic_inf();
    assert_eq!(one(&inf, "Version", "Signature"), "\"$WINDOWS NT$\"");
    assert_eq!(one(&inf, "Version", "Class"), "Net");
    assert_eq!(
        one(&inf, "Version", "ClassGUID").to_ascii_lowercase(),
        "{4d36e972-e325-11ce-bfc1-08002be10318}"
    );
    assert!(
        inf.value("Version", "CatalogFile").is_some(),
        "signed drivers need a catalog"
    );
    assert!(inf.value("Version", "DriverVer").is_some());
}

#[test]
fn hardware_id_is_the_devices_pci_id_and_installs_an_ndis_miniport() {
    let inf = rnic_inf();
    let install = format!("{}.NT", install_section(&inf));
    assert!(inf.section(&install).is_some(), "[{install}] missing");
    // NDIS 6 requires these keywords; their values are what the driver reports.
    let keywords: [(&str, u64); 7] = [
        ("*IfType", ndis_abi::IF_TYPE_ETHERNET_CSMACD.into()),
        ("*MediaType", ndis_abi::NdisMedium802_3.into()),
        (
            "*PhysicalMediaType",
            ndis_abi::NdisPhysicalMedium802_3.into(),
        ),
        ("*AccessType", ndis_abi::NET_IF_ACCESS_BROADCAST.into()),
        (
            "*ConnectionType",
            ndis_abi::NET_IF_CONNECTION_DEDICATED.into(),
        ),
        (
            "*DirectionType",
            ndis_abi::NET_IF_DIRECTION_SENDRECEIVE.into(),
        ),
        ("BusType", ndis_abi::NdisInterfacePci.into()),
    ];
    for (keyword, expected) in keywords {
        assert_eq!(
            number(&inf, &install, keyword),
            expected,
            "[{install}] {keyword}"
        );
    }
    const NCF_PHYSICAL: u64 = 0x4;
    assert_ne!(number(&inf, &install, "Characteristics") & NCF_PHYSICAL, 0);

    // Every AddReg/CopyFiles section named exists.
    for key in ["AddReg", "CopyFiles"] {
        for section in inf
            .value(&install, key)
            .unwrap_or_else(|| panic!("{key} missing"))
        {
            assert!(
                inf.section(section).is_some(),
                "[{section}] ({key}) missing"
            );
        }
    }
    // The NDK capability keyword is declared and enabled: `HKR, , *NetworkDirect, 0, "1"`.
    let ndk = inf
        .section_names()
        .filter_map(|s| inf.section(s))
        .flatten()
        .any(|l| l.values.len() >= 5 && l.values[2] == "*NetworkDirect" && l.values[4] == "\"1\"");
    assert!(ndk, "no HKR line enabling *NetworkDirect");
}

#[test]
fn service_loads_rnic_sys_as_a_kernel_driver() {
    let inf = rnic_inf();
    let services = format!("{}.NT.Services", install_section(&inf));
    let add = inf
        .value(&services, "AddService")
        .unwrap_or_else(|| panic!("[{services}] has no AddService"));
    assert_eq!(add[0], "rnic", "service name");
    let flags: u32 = add[1].parse().unwrap();
    const SPSVCINST_ASSOCSERVICE: u32 = 0x2;
    assert_ne!(
        flags & SPSVCINST_ASSOCSERVICE,
        0,
        "the service must be the device's function driver"
    );
    let service = &add[2];
    assert_eq!(
        number(&inf, service, "ServiceType"),
        1,
        "SERVICE_KERNEL_DRIVER"
    );
    assert!(one(&inf, service, "ServiceBinary").ends_with("\\rnic.sys"));
    assert_eq!(one(&inf, service, "LoadOrderGroup"), "NDIS");
    // The driver file is on the source disk and copied.
    assert!(inf.value("SourceDisksFiles", "rnic.sys").is_some());
    let copy = inf.section("Rnic.CopyFiles").expect("copy-files section");
    assert!(copy.iter().any(|l| l.values == ["rnic.sys"]));
}

#[test]
fn every_string_token_is_defined() {
    let inf = rnic_inf();
    for token in inf.string_tokens() {
        assert!(
            inf.value("Strings", &token).is_some(),
            "%{token}% is used but not defined in [Strings]"
        );
    }
}
