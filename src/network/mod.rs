//! Managed bridge networks: the bridge and veth pairs (netlink), addresses and
//! reservations, dnsmasq for DHCP and DNS, nftables for NAT and published ports.

pub mod addr;
pub mod dnsmasq;
pub mod link;
pub mod nft;
