//! One query against one network's names: an answer, or "forward it". No I/O except the owners'
//! liveness (`/proc`), checked only for the record that matched.

use super::records::{NetworkFile, Record};
use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use std::collections::HashMap;
use std::net::IpAddr;

/// Docker's TTL for container names.
const TTL: u32 = 600;

/// A network's names, indexed for lookup.
#[derive(Default)]
pub(crate) struct Zone {
    names: HashMap<String, Vec<Record>>,
    ptr: HashMap<IpAddr, Record>,
}

impl Zone {
    pub(crate) fn new(file: &NetworkFile) -> Zone {
        let mut zone = Zone::default();
        for rec in &file.records {
            for name in &rec.names {
                let key = name.trim_end_matches('.').to_ascii_lowercase();
                zone.names.entry(key).or_default().push(rec.clone());
            }
            for addr in &rec.addrs {
                zone.ptr.entry(*addr).or_insert_with(|| rec.clone());
            }
        }
        zone
    }
}

/// What to do with a datagram.
pub(crate) enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not one of ours: relay to the host's resolvers.
    Forward,
    /// Not a DNS query at all.
    Drop,
}

fn reply(req: &Message, code: ResponseCode) -> Message {
    let mut msg = Message::new(req.id, MessageType::Response, req.op_code);
    msg.metadata = Metadata::response_from_request(&req.metadata);
    msg.metadata.response_code = code;
    msg.metadata.recursion_available = true;
    msg.queries = req.queries.clone();
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        msg.edns = Some(edns);
    }
    msg
}

fn encode(msg: &Message) -> Outcome {
    msg.to_vec().map(Outcome::Reply).unwrap_or(Outcome::Drop)
}

/// A SERVFAIL for `query` (when forwarding is impossible or failed).
pub(crate) fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    reply(&req, ResponseCode::ServFail).to_vec().ok()
}

fn live<'a>(recs: impl Iterator<Item = &'a Record>) -> Vec<&'a Record> {
    recs.filter(|r| r.owner.is_alive()).collect()
}

/// Answers `query` from `zone`.
pub(crate) fn answer(zone: &Zone, query: &[u8]) -> Outcome {
    let Ok(req) = Message::from_vec(query) else {
        return Outcome::Drop;
    };
    if req.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if req.op_code != OpCode::Query {
        return encode(&reply(&req, ResponseCode::NotImp));
    }
    let Some(q) = req.queries.first() else {
        return encode(&reply(&req, ResponseCode::FormErr));
    };
    if q.query_class() != DNSClass::IN {
        return Outcome::Forward;
    }
    let qname = q.name().clone();
    let key = qname.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let qtype = q.query_type();
    if let Some(recs) = zone.names.get(&key) {
        let recs = live(recs.iter());
        if !recs.is_empty() {
            let mut msg = reply(&req, ResponseCode::NoError);
            msg.metadata.authoritative = true;
            for rec in recs {
                for addr in &rec.addrs {
                    let data = match (addr, qtype) {
                        (IpAddr::V4(a), RecordType::A | RecordType::ANY) => RData::A(A(*a)),
                        (IpAddr::V6(a), RecordType::AAAA | RecordType::ANY) => {
                            RData::AAAA(AAAA(*a))
                        }
                        _ => continue,
                    };
                    msg.answers.push(hickory_proto::rr::Record::from_rdata(
                        qname.clone(),
                        TTL,
                        data,
                    ));
                }
            }
            // A known name without an address of the asked type: NOERROR, no answer (NODATA).
            return encode(&msg);
        }
    }
    if qtype == RecordType::PTR
        && let Ok(net) = qname.parse_arpa_name()
        && let Some(rec) = zone.ptr.get(&net.addr())
        && rec.owner.is_alive()
        && let Some(first) = rec.names.first()
        && let Ok(target) = Name::from_ascii(format!("{}.", first.trim_end_matches('.')))
    {
        let mut msg = reply(&req, ResponseCode::NoError);
        msg.metadata.authoritative = true;
        msg.answers.push(hickory_proto::rr::Record::from_rdata(
            qname,
            TTL,
            RData::PTR(PTR(target)),
        ));
        return encode(&msg);
    }
    Outcome::Forward
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::Owner;
    use hickory_proto::op::Query;

    fn ask(zone: &Zone, name: &str, qtype: RecordType) -> Option<Message> {
        let mut msg = Message::query();
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        match answer(zone, &msg.to_vec().unwrap()) {
            Outcome::Reply(bytes) => Some(Message::from_vec(&bytes).unwrap()),
            Outcome::Forward => None,
            Outcome::Drop => panic!("dropped"),
        }
    }

    #[test]
    fn names_match_case_insensitively_both_families_ptr_and_the_rest_forwards() {
        let file = NetworkFile {
            listen: vec![],
            records: vec![Record {
                names: vec!["Web".into(), "0123456789ab".into()],
                addrs: vec!["10.1.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
                owner: Owner::current("c1"),
            }],
        };
        let zone = Zone::new(&file);
        let a = ask(&zone, "WEB.", RecordType::A).unwrap();
        assert_eq!(a.answers.len(), 1);
        assert!(
            matches!(a.answers[0].data, RData::A(A(ip)) if ip == std::net::Ipv4Addr::new(10, 1, 0, 2))
        );
        let aaaa = ask(&zone, "0123456789AB", RecordType::AAAA).unwrap();
        assert!(matches!(aaaa.answers[0].data, RData::AAAA(_)));
        let mx = ask(&zone, "web.", RecordType::MX).unwrap();
        assert_eq!(
            (mx.response_code, mx.answers.len()),
            (ResponseCode::NoError, 0)
        );
        let ptr = ask(&zone, "2.0.1.10.in-addr.arpa.", RecordType::PTR).unwrap();
        assert!(matches!(&ptr.answers[0].data, RData::PTR(PTR(n)) if n.to_ascii() == "Web."));
        assert!(ask(&zone, "other.example.", RecordType::A).is_none());
        assert!(ask(&zone, "3.0.1.10.in-addr.arpa.", RecordType::PTR).is_none());
        assert!(matches!(answer(&zone, b"junk"), Outcome::Drop));
    }

    #[test]
    fn a_dead_owners_names_are_forwarded() {
        let mut owner = Owner::current("c1");
        owner.start += 1;
        let file = NetworkFile {
            listen: vec![],
            records: vec![Record {
                names: vec!["web".into()],
                addrs: vec!["10.1.0.2".parse().unwrap()],
                owner,
            }],
        };
        assert!(ask(&Zone::new(&file), "web.", RecordType::A).is_none());
    }
}
