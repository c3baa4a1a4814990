//! The content of berth's tables, as batch messages. The layout (docs/design.md):
//!
//! `inet berth`:
//! - maps `ports4` (`meta l4proto . th dport : ipv4_addr . inet_service`), `ports4_ip`
//!   (`ip daddr . meta l4proto . th dport : …`) and the v6 pair `ports6`, `ports6_ip`;
//! - set `bridges` (every berth bridge) and verdict maps `fwd_in`, `fwd_out`, `post_in`,
//!   `post_out` (bridge name → jump to that bridge's chain);
//! - base chains `prerouting` and `output` (nat, dstnat): DNAT through the port maps for
//!   `fib daddr type local`; `forward` (filter): `iifname vmap @fwd_in`, `oifname vmap @fwd_out`;
//!   `postrouting` (nat, srcnat): `iifname vmap @post_in`, `oifname vmap @post_out`;
//! - per bridge B: `in_B`, `out_B`, `post_in_B`, `post_out_B`.
//!
//! icc=false is `oifname B drop` in `in_B`: routed traffic back onto the bridge, and bridged traffic
//! between two ports, which passes the inet forward hook (with `iifname`/`oifname` the bridge) through
//! br_netfilter; `add_network` checks that is on (see docs/design.md for why not the bridge family).

use ipnet::IpNet;

use super::error::NftError;
use super::wire::*;
use super::{Batch, NetRules, TABLE, What};

pub(super) const PORTS4: &str = "ports4";
pub(super) const PORTS4_IP: &str = "ports4_ip";
pub(super) const PORTS6: &str = "ports6";
pub(super) const PORTS6_IP: &str = "ports6_ip";
const BRIDGES: &str = "bridges";
const FWD_IN: &str = "fwd_in";
const FWD_OUT: &str = "fwd_out";
const POST_IN: &str = "post_in";
const POST_OUT: &str = "post_out";
pub(super) const IN_PREFIX: &str = "in_";

pub(super) fn chain_in(bridge: &str) -> String {
    format!("{IN_PREFIX}{bridge}")
}
fn chain_out(bridge: &str) -> String {
    format!("out_{bridge}")
}
fn chain_post_in(bridge: &str) -> String {
    format!("post_in_{bridge}")
}
fn chain_post_out(bridge: &str) -> String {
    format!("post_out_{bridge}")
}

/// Interface names as the kernel takes them: 1 to 15 bytes, none of '/', NUL, whitespace.
pub(super) fn check_bridge(name: &str) -> Result<(), NftError> {
    let ok = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace() || b == b':');
    if ok {
        Ok(())
    } else {
        Err(NftError::BadBridge(name.to_string()))
    }
}

/// icc=false drops bridged frames in the inet forward hook, which they pass only through
/// br_netfilter with `net.bridge.bridge-nf-call-ip{,6}tables` on (in this network namespace).
/// berth does not turn it on: that would change how every bridge on the host is filtered.
pub(super) fn check_br_netfilter(subnets: &[IpNet]) -> Result<(), NftError> {
    let mut keys = vec!["bridge-nf-call-iptables"];
    if subnets.iter().any(|n| matches!(n, IpNet::V6(_))) {
        keys.push("bridge-nf-call-ip6tables");
    }
    for key in keys {
        let path = format!("/proc/sys/net/bridge/{key}");
        let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1");
        if !on {
            return Err(NftError::IccNeedsBrNetfilter {
                sysctl: format!("net.bridge.{key}"),
            });
        }
    }
    Ok(())
}

fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(IFNAMSIZ, 0);
    v
}

// ---- expression building blocks --------------------------------------------------------------

fn meta_is(key: u32, op: u32, data: Vec<u8>) -> [Expr; 2] {
    [
        Expr::Meta { key, dreg: REG_1 },
        Expr::Cmp {
            sreg: REG_1,
            op,
            data,
        },
    ]
}
fn iif(op: u32, name: &str) -> [Expr; 2] {
    meta_is(META_IIFNAME, op, ifname(name))
}
fn oif(op: u32, name: &str) -> [Expr; 2] {
    meta_is(META_OIFNAME, op, ifname(name))
}
fn nfproto(v6: bool) -> [Expr; 2] {
    meta_is(
        META_NFPROTO,
        CMP_EQ,
        vec![if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }],
    )
}
/// `ct status dnat`.
fn ct_dnat() -> Vec<Expr> {
    vec![
        Expr::Ct {
            key: CT_STATUS,
            dreg: REG_1,
        },
        Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            mask: IPS_DST_NAT.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_NEQ,
            data: vec![0; 4],
        },
    ]
}
/// `fib daddr type local`.
fn fib_local() -> [Expr; 2] {
    [
        Expr::Fib {
            result: FIB_RESULT_ADDRTYPE,
            flags: FIB_F_DADDR,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_EQ,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
}
/// `ip saddr NET` / `ip6 saddr NET` (with the family check that makes the offset mean that).
fn saddr_in(net: &IpNet) -> Vec<Expr> {
    let (v6, offset, addr, mask) = match net {
        IpNet::V4(n) => (
            false,
            12,
            n.network().octets().to_vec(),
            n.netmask().octets().to_vec(),
        ),
        IpNet::V6(n) => (
            true,
            8,
            n.network().octets().to_vec(),
            n.netmask().octets().to_vec(),
        ),
    };
    let len = addr.len() as u32;
    let mut e = nfproto(v6).to_vec();
    e.push(Expr::Payload {
        base: PAYLOAD_NETWORK,
        offset,
        len,
        dreg: REG_1,
    });
    if mask.iter().any(|&b| b != 0xff) {
        e.push(Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            xor: vec![0; mask.len()],
            mask,
        });
    }
    e.push(Expr::Cmp {
        sreg: REG_1,
        op: CMP_EQ,
        data: addr,
    });
    e
}
fn verdict(code: i32) -> Expr {
    Expr::Immediate(Verdict::code(code))
}

// ---- messages ----------------------------------------------------------------------------------

fn text(s: String) -> What {
    What::Text(s)
}

fn table(b: &mut Batch, family: u8) {
    let mut a = Attrs::default();
    a.str(NFTA_TABLE_NAME, TABLE);
    b.push(
        NFT_MSG_NEWTABLE,
        family,
        NLM_F_CREATE,
        text(format!("adding table inet {TABLE}")),
        a,
    );
}

pub(super) fn delete_table(b: &mut Batch, family: u8) {
    let mut a = Attrs::default();
    a.str(NFTA_TABLE_NAME, TABLE);
    b.push(
        NFT_MSG_DELTABLE,
        family,
        0,
        text(format!("deleting table inet {TABLE}")),
        a,
    );
}

/// A base chain (`hook`) or a regular one (`None`), created if absent, then flushed.
fn chain(b: &mut Batch, family: u8, name: &str, hook: Option<(&str, u32, i32)>) {
    let mut a = Attrs::default();
    a.str(NFTA_CHAIN_TABLE, TABLE);
    a.str(NFTA_CHAIN_NAME, name);
    if let Some((ty, hooknum, prio)) = hook {
        a.nest(NFTA_CHAIN_HOOK, |a| {
            a.be32(NFTA_HOOK_HOOKNUM, hooknum);
            a.be32(NFTA_HOOK_PRIORITY, prio as u32);
        });
        a.str(NFTA_CHAIN_TYPE, ty);
    }
    b.push(
        NFT_MSG_NEWCHAIN,
        family,
        NLM_F_CREATE,
        text(format!("adding chain {name}")),
        a,
    );
    flush(b, family, name);
}

fn flush(b: &mut Batch, family: u8, name: &str) {
    let mut a = Attrs::default();
    a.str(NFTA_RULE_TABLE, TABLE);
    a.str(NFTA_RULE_CHAIN, name);
    b.push(
        NFT_MSG_DELRULE,
        family,
        0,
        text(format!("flushing chain {name}")),
        a,
    );
}

fn delete_chain(b: &mut Batch, family: u8, name: &str) {
    flush(b, family, name);
    let mut a = Attrs::default();
    a.str(NFTA_CHAIN_TABLE, TABLE);
    a.str(NFTA_CHAIN_NAME, name);
    b.push(
        NFT_MSG_DELCHAIN,
        family,
        0,
        text(format!("deleting chain {name}")),
        a,
    );
}

fn rule(b: &mut Batch, family: u8, chain: &str, what: &str, exprs: &[Expr]) {
    let mut a = Attrs::default();
    a.str(NFTA_RULE_TABLE, TABLE);
    a.str(NFTA_RULE_CHAIN, chain);
    a.nest(NFTA_RULE_EXPRESSIONS, |a| {
        for e in exprs {
            e.encode(a);
        }
    });
    b.push(
        NFT_MSG_NEWRULE,
        family,
        NLM_F_CREATE | NLM_F_APPEND,
        text(format!("adding rule {what} to chain {chain}")),
        a,
    );
}

/// A set or map: key (type, len), data (type, len) for a map (`NFT_DATA_VERDICT`, 0 for a vmap).
fn set(b: &mut Batch, family: u8, name: &str, key: (u32, u32), data: Option<(u32, u32)>) {
    b.set_id += 1;
    let mut a = Attrs::default();
    a.str(NFTA_SET_TABLE, TABLE);
    a.str(NFTA_SET_NAME, name);
    a.be32(NFTA_SET_FLAGS, if data.is_some() { NFT_SET_MAP } else { 0 });
    a.be32(NFTA_SET_KEY_TYPE, key.0);
    a.be32(NFTA_SET_KEY_LEN, key.1);
    if let Some((ty, len)) = data {
        a.be32(NFTA_SET_DATA_TYPE, ty);
        if ty != NFT_DATA_VERDICT {
            a.be32(NFTA_SET_DATA_LEN, len);
        }
    }
    const NFTA_SET_ID: u16 = 10;
    a.be32(NFTA_SET_ID, b.set_id);
    b.push(
        NFT_MSG_NEWSET,
        family,
        NLM_F_CREATE,
        text(format!("adding set {name}")),
        a,
    );
}

enum Data<'a> {
    None,
    Value(&'a [u8]),
    Verdict(Verdict),
}

fn element(b: &mut Batch, cmd: u8, flags: u16, set: &str, key: &[u8], data: Data<'_>, what: What) {
    let mut a = Attrs::default();
    a.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    a.str(NFTA_SET_ELEM_LIST_SET, set);
    a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
        a.list_elem(|a| {
            a.value(NFTA_SET_ELEM_KEY, key);
            match &data {
                Data::None => {}
                Data::Value(v) => a.value(NFTA_SET_ELEM_DATA, v),
                Data::Verdict(v) => a.verdict(NFTA_SET_ELEM_DATA, v),
            }
        })
    });
    b.push(cmd, NFPROTO_INET, flags, what, a);
}

/// Both tables with their sets, maps and base chains, created if absent; base chains re-filled.
pub(super) fn tables(b: &mut Batch) {
    let inet = NFPROTO_INET;
    table(b, inet);
    let ifn = (TYPE_IFNAME, IFNAMSIZ as u32);
    let vmap = Some((NFT_DATA_VERDICT, 0));
    set(b, inet, BRIDGES, ifn, None);
    for m in [FWD_IN, FWD_OUT, POST_IN, POST_OUT] {
        set(b, inet, m, ifn, vmap);
    }
    let pp = [TYPE_INET_PROTOCOL, TYPE_INET_SERVICE];
    let v4 = (concat_type(&[TYPE_IPADDR, TYPE_INET_SERVICE]), 8);
    let v6 = (concat_type(&[TYPE_IP6ADDR, TYPE_INET_SERVICE]), 20);
    set(b, inet, PORTS4, (concat_type(&pp), 8), Some(v4));
    set(
        b,
        inet,
        PORTS4_IP,
        (concat_type(&[TYPE_IPADDR, pp[0], pp[1]]), 12),
        Some(v4),
    );
    set(b, inet, PORTS6, (concat_type(&pp), 8), Some(v6));
    set(
        b,
        inet,
        PORTS6_IP,
        (concat_type(&[TYPE_IP6ADDR, pp[0], pp[1]]), 24),
        Some(v6),
    );

    for (name, hook) in [("prerouting", HOOK_PREROUTING), ("output", HOOK_OUTPUT)] {
        chain(b, inet, name, Some(("nat", hook, -100)));
        for v6 in [false, true] {
            for with_ip in [true, false] {
                dnat_rule(b, name, v6, with_ip);
            }
        }
    }
    chain(b, inet, "forward", Some(("filter", HOOK_FORWARD, 0)));
    rule(
        b,
        inet,
        "forward",
        "iifname vmap @fwd_in",
        &vmap_rule(META_IIFNAME, FWD_IN),
    );
    rule(
        b,
        inet,
        "forward",
        "oifname vmap @fwd_out",
        &vmap_rule(META_OIFNAME, FWD_OUT),
    );
    chain(b, inet, "postrouting", Some(("nat", HOOK_POSTROUTING, 100)));
    rule(
        b,
        inet,
        "postrouting",
        "iifname vmap @post_in",
        &vmap_rule(META_IIFNAME, POST_IN),
    );
    rule(
        b,
        inet,
        "postrouting",
        "oifname vmap @post_out",
        &vmap_rule(META_OIFNAME, POST_OUT),
    );
}

fn vmap_rule(key: u32, map: &str) -> [Expr; 2] {
    [
        Expr::Meta { key, dreg: REG_1 },
        Expr::Lookup {
            set: map.to_string(),
            sreg: REG_1,
            dreg: Some(REG_VERDICT),
        },
    ]
}

/// `meta nfproto F fib daddr type local dnat F to [F daddr .] meta l4proto . th dport map @M`.
fn dnat_rule(b: &mut Batch, chain: &str, v6: bool, with_ip: bool) {
    let mut e = nfproto(v6).to_vec();
    e.extend(fib_local());
    let mut reg = REG32_00;
    if with_ip {
        let (offset, len) = if v6 { (24, 16) } else { (16, 4) };
        e.push(Expr::Payload {
            base: PAYLOAD_NETWORK,
            offset,
            len,
            dreg: reg,
        });
        reg += len / 4;
    }
    e.push(Expr::Meta {
        key: META_L4PROTO,
        dreg: reg,
    });
    e.push(Expr::Payload {
        base: PAYLOAD_TRANSPORT,
        offset: 2,
        len: 2,
        dreg: reg + 1,
    });
    let map = match (v6, with_ip) {
        (false, false) => PORTS4,
        (false, true) => PORTS4_IP,
        (true, false) => PORTS6,
        (true, true) => PORTS6_IP,
    };
    e.push(Expr::Lookup {
        set: map.to_string(),
        sreg: REG32_00,
        dreg: Some(REG32_00),
    });
    let (family, proto_reg) = if v6 {
        (NFPROTO_IPV6, REG32_00 + 4)
    } else {
        (NFPROTO_IPV4, REG32_00 + 1)
    };
    e.push(Expr::Dnat {
        family,
        reg_addr: REG32_00,
        reg_proto: proto_reg,
    });
    rule(
        b,
        NFPROTO_INET,
        chain,
        &format!("dnat through map {map}"),
        &e,
    );
}

/// One network's chains and map elements (the tables must be in the batch already).
pub(super) fn network(b: &mut Batch, r: &NetRules) {
    let inet = NFPROTO_INET;
    let br = r.bridge.as_str();
    let (cin, cout, cpin, cpout) = (
        chain_in(br),
        chain_out(br),
        chain_post_in(br),
        chain_post_out(br),
    );
    for c in [&cin, &cout, &cpin, &cpout] {
        chain(b, inet, c, None);
    }
    // Forwarding out of the bridge.
    if r.internal {
        rule(
            b,
            inet,
            &cin,
            "internal: nothing leaves the bridge",
            &[&oif(CMP_NEQ, br)[..], &[verdict(NF_DROP)]].concat(),
        );
    } else {
        // Published ports are reachable from anywhere that reaches the host, other networks included.
        rule(
            b,
            inet,
            &cin,
            "ct status dnat accept",
            &[ct_dnat(), vec![verdict(NF_ACCEPT)]].concat(),
        );
        let mut iso = oif(CMP_NEQ, br).to_vec();
        iso.push(Expr::Meta {
            key: META_OIFNAME,
            dreg: REG_1,
        });
        iso.push(Expr::Lookup {
            set: BRIDGES.to_string(),
            sreg: REG_1,
            dreg: None,
        });
        iso.push(verdict(NF_DROP));
        rule(b, inet, &cin, "isolation: no other berth bridge", &iso);
    }
    if !r.icc {
        rule(
            b,
            inet,
            &cin,
            "icc off: nothing back onto the bridge",
            &[&oif(CMP_EQ, br)[..], &[verdict(NF_DROP)]].concat(),
        );
    }
    // Forwarding into the bridge.
    if r.internal {
        rule(
            b,
            inet,
            &cout,
            "internal: nothing enters the bridge",
            &[&iif(CMP_NEQ, br)[..], &[verdict(NF_DROP)]].concat(),
        );
    } else {
        rule(
            b,
            inet,
            &cout,
            "ct status dnat accept",
            &[ct_dnat(), vec![verdict(NF_ACCEPT)]].concat(),
        );
    }
    // Source NAT.
    for net in &r.subnets {
        if !r.internal {
            let mut e = oif(CMP_NEQ, br).to_vec();
            e.extend(saddr_in(net));
            e.push(Expr::Masquerade);
            rule(
                b,
                inet,
                &cpin,
                &format!("masquerade {net} leaving the bridge"),
                &e,
            );
        }
        let mut e = ct_dnat();
        e.extend(saddr_in(net));
        e.push(Expr::Masquerade);
        rule(
            b,
            inet,
            &cpout,
            &format!("hairpin: masquerade DNAT'd {net} back onto the bridge"),
            &e,
        );
    }
    if r.subnets.iter().any(|n| matches!(n, IpNet::V4(_))) {
        let lo: IpNet = "127.0.0.0/8".parse().expect("a CIDR");
        let mut e = saddr_in(&lo);
        e.push(Expr::Masquerade);
        rule(
            b,
            inet,
            &cpout,
            "masquerade 127.0.0.0/8 onto the bridge",
            &e,
        );
    }
    let key = ifname(br);
    let add = |b: &mut Batch, set: &str, data: Data<'_>| {
        element(
            b,
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            set,
            &key,
            data,
            text(format!("adding {br} to set {set}")),
        );
    };
    add(b, BRIDGES, Data::None);
    add(b, FWD_IN, Data::Verdict(Verdict::jump(&cin)));
    add(b, FWD_OUT, Data::Verdict(Verdict::jump(&cout)));
    add(b, POST_IN, Data::Verdict(Verdict::jump(&cpin)));
    add(b, POST_OUT, Data::Verdict(Verdict::jump(&cpout)));
}

/// Deletes one network's map elements (they exist whenever its chains do).
pub(super) fn drop_network_elements(b: &mut Batch, br: &str) {
    let key = ifname(br);
    for set in [BRIDGES, FWD_IN, FWD_OUT, POST_IN, POST_OUT] {
        element(
            b,
            NFT_MSG_DELSETELEM,
            0,
            set,
            &key,
            Data::None,
            text(format!("deleting {br} from set {set}")),
        );
    }
}

/// Deletes one network's chains (after its elements, which jump to them).
pub(super) fn drop_network_chains(b: &mut Batch, br: &str) {
    for c in [
        chain_in(br),
        chain_out(br),
        chain_post_in(br),
        chain_post_out(br),
    ] {
        delete_chain(b, NFPROTO_INET, &c);
    }
}

pub(super) fn port_element(b: &mut Batch, map: &str, key: &[u8], data: &[u8], what: What) {
    element(
        b,
        NFT_MSG_NEWSETELEM,
        NLM_F_CREATE | NLM_F_EXCL,
        map,
        key,
        Data::Value(data),
        what,
    );
}

pub(super) fn del_port_element(b: &mut Batch, map: &str, key: &[u8], what: What) {
    element(b, NFT_MSG_DELSETELEM, 0, map, key, Data::None, what);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_are_checked() {
        assert!(check_bridge("berth0").is_ok());
        assert!(check_bridge("br-0123456789a").is_ok());
        for bad in ["", "a/b", "sixteen-chars-xx", "a b", ".."] {
            assert!(check_bridge(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn saddr_masks_only_partial_prefixes() {
        let e = saddr_in(&"10.1.0.0/16".parse().unwrap());
        assert!(matches!(&e[3], Expr::Bitwise { mask, .. } if mask == &[255, 255, 0, 0]));
        let e = saddr_in(&"10.1.2.3/32".parse().unwrap());
        assert!(!e.iter().any(|x| matches!(x, Expr::Bitwise { .. })));
        let e = saddr_in(&"fd00::/64".parse().unwrap());
        assert!(matches!(
            &e[2],
            Expr::Payload {
                offset: 8,
                len: 16,
                ..
            }
        ));
    }

    #[test]
    fn a_network_batch_names_every_message() {
        let mut b = Batch::new(1);
        tables(&mut b);
        network(
            &mut b,
            &NetRules {
                bridge: "br0".into(),
                subnets: vec!["10.9.0.0/24".parse().unwrap()],
                internal: false,
                icc: false,
            },
        );
        assert!(
            b.whats
                .iter()
                .any(|(_, w)| matches!(w, What::Text(t) if t.contains("icc off")))
        );
        assert!(
            b.whats
                .iter()
                .any(|(_, w)| matches!(w, What::Text(t) if t.contains("masquerade 10.9.0.0/24")))
        );
        let (buf, whats, _) = b.finish();
        assert_eq!(crate::nft::wire::replies(&buf).len(), whats.len() + 2);
    }
}
