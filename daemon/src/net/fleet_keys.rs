//! Which fleet key a connection speaks. Outside a rotation there is one
//! key. During one, `psk_next` is a second: connections accepted on the
//! next key's listeners speak it, and a dial that fails with one key is
//! tried again, on the same address, with the other. pnet has no
//! negotiation (a wrong key only shows as a failed noise handshake), so
//! the choice has to be made before the first byte, from the address.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use libp2p::Multiaddr;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::pnet::PreSharedKey;

/// Addresses remembered as answering to the next key. Past this the
/// memory starts again from the current key, which costs one failed dial
/// per address; mDNS can name many addresses.
const MAX_REMEMBERED_ADDRESSES: usize = 1024;

#[derive(Clone)]
pub struct FleetKeys {
    current: PreSharedKey,
    next: Option<PreSharedKey>,
    choice: Arc<Mutex<Choice>>,
}

#[derive(Default)]
struct Choice {
    /// Local TCP ports whose listeners speak the next key.
    next_ports: BTreeSet<u16>,
    /// Addresses to dial with the next key: the current one failed there.
    dial_next: BTreeSet<Multiaddr>,
}

impl std::fmt::Debug for FleetKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetKeys")
            .field("current", &self.current.fingerprint().to_string())
            .field("next", &self.next.map(|k| k.fingerprint().to_string()))
            .finish()
    }
}

/// The address without a trailing `/p2p/…`, which the swarm may add to
/// what it dials and report either way.
pub(super) fn without_peer_id(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}

/// The TCP port an address names, if any.
pub fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

impl FleetKeys {
    pub fn new(current: PreSharedKey, next: Option<PreSharedKey>) -> Self {
        Self { current, next, choice: Arc::default() }
    }

    pub fn current(&self) -> PreSharedKey {
        self.current
    }

    pub fn next(&self) -> Option<PreSharedKey> {
        self.next
    }

    fn choice(&self) -> std::sync::MutexGuard<'_, Choice> {
        self.choice.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connections accepted on `addr`'s port speak the next key. Ports,
    /// not whole addresses: a listener on 0.0.0.0 accepts on every local
    /// address, and the configuration keeps the two keys' ports apart.
    pub fn listening_with_next(&self, addr: &Multiaddr) {
        if let Some(port) = tcp_port(addr).filter(|port| *port != 0) {
            self.choice().next_ports.insert(port);
        }
    }

    /// The key a new connection speaks.
    pub fn for_connection(&self, point: &ConnectedPoint) -> PreSharedKey {
        let Some(next) = self.next else { return self.current };
        let choice = self.choice();
        let use_next = match point {
            ConnectedPoint::Dialer { address, .. } => choice.dial_next.contains(&without_peer_id(address)),
            ConnectedPoint::Listener { local_addr, .. } => {
                tcp_port(local_addr).is_some_and(|port| choice.next_ports.contains(&port))
            }
        };
        if use_next { next } else { self.current }
    }

    /// A dial to `addr` failed: the next dial there tries the other key.
    /// True when that is the next key, so the caller may retry soon rather
    /// than back off: only a failure with both keys counts as one.
    pub fn dial_failed(&self, addr: &Multiaddr) -> bool {
        if self.next.is_none() {
            return false;
        }
        let addr = without_peer_id(addr);
        let mut choice = self.choice();
        if choice.dial_next.remove(&addr) {
            return false;
        }
        if choice.dial_next.len() >= MAX_REMEMBERED_ADDRESSES {
            choice.dial_next.clear();
        }
        choice.dial_next.insert(addr);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;

    fn key(byte: u8) -> PreSharedKey {
        PreSharedKey::new([byte; 32])
    }

    fn dialer(addr: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: addr.parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::New,
        }
    }

    fn listener(local: &str) -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: local.parse().unwrap(),
            send_back_addr: "/ip4/10.0.0.9/tcp/50000".parse().unwrap(),
        }
    }

    #[test]
    fn without_a_next_key_every_connection_speaks_the_current_one() {
        let keys = FleetKeys::new(key(1), None);
        keys.listening_with_next(&"/ip4/0.0.0.0/tcp/7401".parse().unwrap());
        assert!(!keys.dial_failed(&"/ip4/10.0.0.1/tcp/7400".parse().unwrap()));
        assert_eq!(keys.for_connection(&dialer("/ip4/10.0.0.1/tcp/7400")), key(1));
        assert_eq!(keys.for_connection(&listener("/ip4/10.0.0.2/tcp/7401")), key(1));
    }

    #[test]
    fn the_next_keys_listener_is_told_by_its_port() {
        let keys = FleetKeys::new(key(1), Some(key(2)));
        keys.listening_with_next(&"/ip4/0.0.0.0/tcp/7401".parse().unwrap());
        assert_eq!(keys.for_connection(&listener("/ip4/10.0.0.2/tcp/7401")), key(2));
        assert_eq!(keys.for_connection(&listener("/ip4/10.0.0.2/tcp/7400")), key(1));
    }

    #[test]
    fn a_failed_dial_alternates_the_key_on_that_address_only() {
        let keys = FleetKeys::new(key(1), Some(key(2)));
        let addr = "/ip4/10.0.0.1/tcp/7400";
        assert!(keys.dial_failed(&addr.parse().unwrap()), "the first failure moves to the next key");
        assert_eq!(keys.for_connection(&dialer(addr)), key(2));
        assert_eq!(keys.for_connection(&dialer("/ip4/10.0.0.3/tcp/7400")), key(1));
        let with_id = format!("{addr}/p2p/{}", libp2p::PeerId::random());
        assert_eq!(keys.for_connection(&dialer(&with_id)), key(2), "a peer id on the address changes nothing");
        assert!(!keys.dial_failed(&addr.parse().unwrap()), "failing with both keys is a real failure");
        assert_eq!(keys.for_connection(&dialer(addr)), key(1));
    }
}
