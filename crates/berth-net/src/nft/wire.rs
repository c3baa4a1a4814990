//! The nf_tables netlink vocabulary berth needs, encoded by hand: attributes, the expressions of
//! berth's rules, and message framing. Only what berth's table uses is here; numbers are the
//! kernel's uapi (`linux/netfilter/nf_tables.h`, `linux/netfilter/nfnetlink.h`).

pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;

pub(super) const NFT_MSG_NEWTABLE: u8 = 0;
pub(super) const NFT_MSG_GETTABLE: u8 = 1;
pub(super) const NFT_MSG_DELTABLE: u8 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u8 = 3;
pub(super) const NFT_MSG_GETCHAIN: u8 = 4;
pub(super) const NFT_MSG_DELCHAIN: u8 = 5;
pub(super) const NFT_MSG_NEWRULE: u8 = 6;
pub(super) const NFT_MSG_DELRULE: u8 = 8;
pub(super) const NFT_MSG_NEWSET: u8 = 9;
pub(super) const NFT_MSG_NEWSETELEM: u8 = 12;
pub(super) const NFT_MSG_DELSETELEM: u8 = 14;
pub(super) const NFT_MSG_GETGEN: u8 = 16;

pub(super) const NLM_F_REQUEST: u16 = 1;
pub(super) const NLM_F_ACK: u16 = 4;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_EXCL: u16 = 0x200;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLM_F_APPEND: u16 = 0x800;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

pub(super) const NFPROTO_INET: u8 = 1;
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_IPV6: u8 = 10;

// Table, chain, rule, set and element attributes.
pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_SET_TABLE: u16 = 1;
pub(super) const NFTA_SET_NAME: u16 = 2;
pub(super) const NFTA_SET_FLAGS: u16 = 3;
pub(super) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(super) const NFTA_SET_KEY_LEN: u16 = 5;
pub(super) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(super) const NFTA_SET_DATA_LEN: u16 = 7;
pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFT_SET_MAP: u32 = 0x8;
pub(super) const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

// nft's own datatype numbers, so `nft list` shows berth's sets with readable types.
pub(super) const TYPE_IPADDR: u32 = 7;
pub(super) const TYPE_IP6ADDR: u32 = 8;
pub(super) const TYPE_INET_PROTOCOL: u32 = 12;
pub(super) const TYPE_INET_SERVICE: u32 = 13;
pub(super) const TYPE_IFNAME: u32 = 41;
/// nft's id of a concatenated type `a . b . …`.
pub(super) fn concat_type(parts: &[u32]) -> u32 {
    parts.iter().fold(0, |acc, t| (acc << 6) | t)
}

/// Netfilter hooks.
pub(super) const HOOK_PREROUTING: u32 = 0;
pub(super) const HOOK_FORWARD: u32 = 2;
pub(super) const HOOK_OUTPUT: u32 = 3;
pub(super) const HOOK_POSTROUTING: u32 = 4;

/// Registers: the verdict, the first 128-bit one, and the first 32-bit one (concatenations).
pub(super) const REG_VERDICT: u32 = 0;
pub(super) const REG_1: u32 = 1;
pub(super) const REG32_00: u32 = 8;

pub(super) const META_IIFNAME: u32 = 6;
pub(super) const META_OIFNAME: u32 = 7;
pub(super) const META_NFPROTO: u32 = 15;
pub(super) const META_L4PROTO: u32 = 16;
pub(super) const CT_STATUS: u32 = 2;
pub(super) const IPS_DST_NAT: u32 = 0x20;
pub(super) const FIB_RESULT_ADDRTYPE: u32 = 3;
pub(super) const FIB_F_DADDR: u32 = 2;
pub(super) const RTN_LOCAL: u32 = 2;
pub(super) const PAYLOAD_NETWORK: u32 = 1;
pub(super) const PAYLOAD_TRANSPORT: u32 = 2;
pub(super) const CMP_EQ: u32 = 0;
pub(super) const CMP_NEQ: u32 = 1;
pub(super) const NAT_DNAT: u32 = 1;

pub(super) const NF_DROP: i32 = 0;
pub(super) const NF_ACCEPT: i32 = 1;
pub(super) const NFT_JUMP: i32 = -3;

pub(super) const IFNAMSIZ: usize = 16;

/// A netlink attribute stream under construction.
#[derive(Default)]
pub(super) struct Attrs {
    pub(super) buf: Vec<u8>,
}

impl Attrs {
    pub(super) fn put(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).expect("netlink attribute over 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }
    pub(super) fn str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v);
    }
    pub(super) fn be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }
    pub(super) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        f(self);
        let len = u16::try_from(self.buf.len() - start).expect("netlink attribute over 64 KiB");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }
    /// `NFTA_DATA_VALUE` inside a data attribute.
    pub(super) fn value(&mut self, ty: u16, bytes: &[u8]) {
        self.nest(ty, |a| a.put(NFTA_DATA_VALUE, bytes));
    }
    /// `NFTA_DATA_VERDICT` inside a data attribute.
    pub(super) fn verdict(&mut self, ty: u16, v: &Verdict) {
        self.nest(ty, |a| {
            a.nest(NFTA_DATA_VERDICT, |a| {
                a.put(NFTA_VERDICT_CODE, &v.code.to_be_bytes());
                if let Some(chain) = &v.chain {
                    a.str(NFTA_VERDICT_CHAIN, chain);
                }
            })
        });
    }
    /// A list of elements, each `NFTA_LIST_ELEM`.
    pub(super) fn list_elem(&mut self, f: impl FnOnce(&mut Attrs)) {
        self.nest(NFTA_LIST_ELEM, f);
    }
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

/// A verdict: a code, and the chain for a jump.
#[derive(Clone, Debug)]
pub(super) struct Verdict {
    pub(super) code: i32,
    pub(super) chain: Option<String>,
}

impl Verdict {
    pub(super) fn jump(chain: &str) -> Verdict {
        Verdict {
            code: NFT_JUMP,
            chain: Some(chain.to_string()),
        }
    }
    pub(super) fn code(code: i32) -> Verdict {
        Verdict { code, chain: None }
    }
}

/// One expression of a rule.
#[derive(Clone, Debug)]
pub(super) enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Lookup {
        set: String,
        sreg: u32,
        dreg: Option<u32>,
    },
    Immediate(Verdict),
    Ct {
        key: u32,
        dreg: u32,
    },
    Fib {
        result: u32,
        flags: u32,
        dreg: u32,
    },
    Dnat {
        family: u8,
        reg_addr: u32,
        reg_proto: u32,
    },
    Masquerade,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::Immediate(_) => "immediate",
            Expr::Ct { .. } => "ct",
            Expr::Fib { .. } => "fib",
            Expr::Dnat { .. } => "nat",
            Expr::Masquerade => "masq",
        }
    }

    /// The expression's own attributes (`NFTA_<EXPR>_*`, numbered as in the uapi header).
    fn body(&self, a: &mut Attrs) {
        match self {
            Expr::Meta { key, dreg } => {
                a.be32(1, *dreg);
                a.be32(2, *key);
            }
            Expr::Cmp { sreg, op, data } => {
                a.be32(1, *sreg);
                a.be32(2, *op);
                a.value(3, data);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                a.be32(1, *dreg);
                a.be32(2, *base);
                a.be32(3, *offset);
                a.be32(4, *len);
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                a.be32(1, *sreg);
                a.be32(2, *dreg);
                a.be32(3, mask.len() as u32);
                a.value(4, mask);
                a.value(5, xor);
            }
            Expr::Lookup { set, sreg, dreg } => {
                a.str(1, set);
                a.be32(2, *sreg);
                if let Some(d) = dreg {
                    a.be32(3, *d);
                }
            }
            Expr::Immediate(v) => {
                a.be32(1, REG_VERDICT);
                a.verdict(2, v);
            }
            Expr::Ct { key, dreg } => {
                a.be32(1, *dreg);
                a.be32(2, *key);
            }
            Expr::Fib {
                result,
                flags,
                dreg,
            } => {
                a.be32(1, *dreg);
                a.be32(2, *result);
                a.be32(3, *flags);
            }
            Expr::Dnat {
                family,
                reg_addr,
                reg_proto,
            } => {
                a.be32(1, NAT_DNAT);
                a.be32(2, u32::from(*family));
                a.be32(3, *reg_addr);
                a.be32(5, *reg_proto);
            }
            Expr::Masquerade => {}
        }
    }

    /// The expression as one element of a rule's `NFTA_RULE_EXPRESSIONS` list.
    pub(super) fn encode(&self, a: &mut Attrs) {
        const NFTA_EXPR_NAME: u16 = 1;
        const NFTA_EXPR_DATA: u16 = 2;
        a.list_elem(|a| {
            a.str(NFTA_EXPR_NAME, self.name());
            a.nest(NFTA_EXPR_DATA, |a| self.body(a));
        });
    }
}

/// Frames messages: the netlink header and nfgenmsg, then the attributes.
pub(super) fn message(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = (16 + 4 + attrs.len()) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// The nf_tables message type of an nft command.
pub(super) fn nft_type(cmd: u8) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | u16::from(cmd)
}

/// One received netlink message.
pub(super) struct Reply<'a> {
    pub(super) ty: u16,
    pub(super) seq: u32,
    pub(super) body: &'a [u8],
}

/// Splits a datagram into its messages.
pub(super) fn replies(buf: &[u8]) -> Vec<Reply<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
        out.push(Reply {
            ty,
            seq,
            body: &buf[at + 16..at + len],
        });
        at += (len + 3) & !3;
    }
    out
}

/// The errno of an `NLMSG_ERROR` body (0 = an ack).
pub(super) fn error_code(body: &[u8]) -> i32 {
    body.get(..4).map_or(-libc::EPROTO, |b| {
        i32::from_ne_bytes(b.try_into().expect("4 bytes"))
    })
}

/// Top-level attributes of an nf_tables reply (after its nfgenmsg).
pub(super) fn attrs(body: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 4;
    while at + 4 <= body.len() {
        let len = u16::from_ne_bytes([body[at], body[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([body[at + 2], body[at + 3]]) & !NLA_F_NESTED;
        if len < 4 || at + len > body.len() {
            break;
        }
        out.push((ty, &body[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// A NUL-terminated string attribute.
pub(super) fn attr_str(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attribute_lengths_and_padding() {
        let mut a = Attrs::default();
        a.nest(4, |a| {
            a.str(1, "ab"); // 4 + 3 → 7, padded to 8
            a.be32(2, 1);
        });
        assert_eq!(a.buf.len(), 4 + 8 + 8);
        assert_eq!(u16::from_ne_bytes([a.buf[0], a.buf[1]]), 20);
        assert_eq!(u16::from_ne_bytes([a.buf[2], a.buf[3]]), 4 | NLA_F_NESTED);
        assert_eq!(&a.buf[8..11], b"ab\0");
        assert_eq!(&a.buf[16..20], &1u32.to_be_bytes());
    }

    #[test]
    fn concat_types_match_nft() {
        // nft shows `inet_proto . inet_service` for this id.
        assert_eq!(
            concat_type(&[TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]),
            (12 << 6) | 13
        );
        assert_eq!(concat_type(&[TYPE_IPADDR]), 7);
    }

    #[test]
    fn replies_split_a_datagram() {
        let mut buf = Vec::new();
        message(
            &mut buf,
            nft_type(NFT_MSG_NEWTABLE),
            0,
            7,
            NFPROTO_INET,
            0,
            &[1, 2, 3, 0],
        );
        message(&mut buf, NLMSG_DONE, 0, 8, 0, 0, &[]);
        let r = replies(&buf);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].ty, r[0].seq, r[0].body.len()),
            (nft_type(NFT_MSG_NEWTABLE), 7, 8)
        );
        assert_eq!((r[1].ty, r[1].seq), (NLMSG_DONE, 8));
    }
}
