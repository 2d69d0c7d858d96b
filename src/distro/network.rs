//! DHCP on the container's interface, in each style's own files.

use std::path::Path;

use super::schema::{NetworkSpec, Style};
use crate::rootfs::exists_in_root;

/// A file to write: path, content, mode.
pub(super) type Out = (String, String, u32);

/// What enables a style's service: systemd links (path under /etc/systemd/system,
/// unit), or OpenRC runlevel links (runlevel, service).
pub(super) enum Enable {
    Systemd(&'static [(&'static str, &'static str)]),
    OpenRc(&'static [(&'static str, &'static str)]),
}

impl Style {
    /// Files whose presence says the rootfs uses this style.
    fn markers(self) -> &'static [&'static str] {
        match self {
            Style::Netplan => &[
                "/usr/sbin/netplan",
                "/usr/lib/systemd/system-generators/netplan",
                "/lib/systemd/system-generators/netplan",
            ],
            Style::Ifupdown => &["/sbin/ifup", "/usr/sbin/ifup"],
            Style::Ifcfg => &["/etc/sysconfig/network-scripts"],
            Style::NmKeyfile => &["/usr/sbin/NetworkManager", "/sbin/NetworkManager"],
            Style::Networkd => &["/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd"],
            Style::AlpineInterfaces => &["/etc/init.d/networking", "/sbin/ifup"],
            Style::None => &[],
        }
    }

    pub(super) fn enable(self) -> Enable {
        match self {
            // What `systemctl enable` links, minus the wait-online services (only
            // wanted when something orders itself after network-online.target).
            Style::Networkd => Enable::Systemd(&[
                ("multi-user.target.wants/systemd-networkd.service", "systemd-networkd.service"),
                ("sockets.target.wants/systemd-networkd.socket", "systemd-networkd.socket"),
                ("dbus-org.freedesktop.network1.service", "systemd-networkd.service"),
            ]),
            Style::NmKeyfile => Enable::Systemd(&[
                ("multi-user.target.wants/NetworkManager.service", "NetworkManager.service"),
                ("dbus-org.freedesktop.NetworkManager.service", "NetworkManager.service"),
            ]),
            Style::Ifupdown => Enable::Systemd(&[("multi-user.target.wants/networking.service", "networking.service")]),
            Style::AlpineInterfaces => Enable::OpenRc(&[("default", "networking")]),
            // netplan's generator enables networkd itself; ifcfg files are read by
            // NetworkManager or the legacy network service, whichever the rootfs runs.
            Style::Netplan | Style::Ifcfg | Style::None => Enable::Systemd(&[]),
        }
    }
}

/// The style to use in `rootfs`: the only candidate, else the first whose tools the
/// rootfs has, else the first.
pub(super) fn choose(rootfs: &Path, styles: &[Style]) -> Style {
    match styles {
        [only] => *only,
        _ => styles
            .iter()
            .copied()
            .find(|s| s.markers().iter().any(|m| exists_in_root(rootfs, m)))
            .or(styles.first().copied())
            .unwrap_or(Style::None),
    }
}

/// The files that configure DHCP on `net.interface` in `style`.
pub(super) fn files(style: Style, net: &NetworkSpec, hostname: &str) -> Vec<Out> {
    let i = &net.interface;
    match style {
        Style::Netplan => vec![(
            "/etc/netplan/10-hutch.yaml".into(),
            format!(
                "# Written by hutch: DHCP on {i}.\nnetwork:\n  version: 2\n  ethernets:\n    {i}:\n      dhcp4: true\n      dhcp-identifier: mac\n"
            ),
            0o600,
        )],
        Style::Ifupdown => vec![(
            "/etc/network/interfaces".into(),
            format!(
                "# Written by hutch: DHCP on {i}. See interfaces(5).\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nauto {i}\niface {i} inet dhcp\n"
            ),
            0o644,
        )],
        Style::AlpineInterfaces => vec![(
            "/etc/network/interfaces".into(),
            format!(
                "# Written by hutch: DHCP on {i}. See interfaces(5).\nauto lo\niface lo inet loopback\n\nauto {i}\niface {i} inet dhcp\n\thostname {hostname}\n"
            ),
            0o644,
        )],
        Style::Ifcfg => {
            let nm = match net.nm_controlled {
                Some(true) => "NM_CONTROLLED=yes\n",
                Some(false) => "NM_CONTROLLED=no\n",
                None => "",
            };
            vec![
                (
                    format!("/etc/sysconfig/network-scripts/ifcfg-{i}"),
                    format!(
                        "# Written by hutch: DHCP on {i}.\nDEVICE={i}\nTYPE=Ethernet\nBOOTPROTO=dhcp\nONBOOT=yes\nHOSTNAME={hostname}\nDHCP_HOSTNAME={hostname}\n{nm}"
                    ),
                    0o644,
                ),
                ("/etc/sysconfig/network".into(), format!("NETWORKING=yes\nHOSTNAME={hostname}\n"), 0o644),
            ]
        }
        Style::NmKeyfile => vec![(
            format!("/etc/NetworkManager/system-connections/{i}.nmconnection"),
            format!(
                "# Written by hutch: DHCP on {i}.\n[connection]\nid={i}\ntype=ethernet\ninterface-name={i}\nautoconnect=true\n\n[ipv4]\nmethod=auto\ndhcp-client-id=mac\n\n[ipv6]\nmethod=auto\n"
            ),
            0o600,
        )],
        Style::Networkd => vec![(
            format!("/etc/systemd/network/10-hutch-{i}.network"),
            format!(
                "# Written by hutch: DHCP on {i}.\n[Match]\nName={i}\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nClientIdentifier=mac\n"
            ),
            0o644,
        )],
        Style::None => vec![],
    }
}

/// Directories the style expects next to its files.
pub(super) fn dirs(style: Style) -> &'static [&'static str] {
    match style {
        Style::Ifupdown => &["/etc/network/interfaces.d"],
        // busybox ifup runs run-parts on these and fails when they are missing.
        Style::AlpineInterfaces => &[
            "/etc/network/if-pre-up.d",
            "/etc/network/if-up.d",
            "/etc/network/if-down.d",
            "/etc/network/if-post-down.d",
        ],
        _ => &[],
    }
}
