//! Container ids (64 hex characters, like Docker's) and generated `adjective_surname` names.

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "curious",
    "daring", "eager", "fancy", "fearless", "gentle", "glad", "golden", "happy", "humble", "jolly",
    "keen", "kind", "lively", "lucid", "merry", "mellow", "nimble", "noble", "patient", "plucky",
    "polite", "proud", "quick", "quiet", "rapid", "serene", "sharp", "shiny", "silent", "sleepy",
    "smooth", "snappy", "steady", "sunny", "swift", "tender", "tidy", "upbeat", "vivid", "warm",
    "wise", "witty", "zealous", "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "archimedes",
    "babbage",
    "bohr",
    "boole",
    "carson",
    "cori",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goodall",
    "hamilton",
    "hawking",
    "hopper",
    "hypatia",
    "jemison",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "planck",
    "ramanujan",
    "ritchie",
    "sagan",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "volta",
    "wozniak",
    "yalow",
];

/// A fresh random container id: 64 lowercase hex characters.
pub fn new_id() -> String {
    hex::encode(random_bytes::<32>())
}

/// Bytes from the kernel's CSPRNG. A plain `getrandom(2)`: on the start hot path this avoids a
/// userspace generator's seeding and CPU feature detection (cpuid traps to the hypervisor in VMs).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let mut filled = 0;
    while filled < N {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // getrandom(2) cannot fail on Linux ≥ 3.17 once the pool is initialised, except EINTR.
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
    bytes
}

/// A uniform index below `n` from random bytes (the tiny modulo bias is irrelevant for names).
fn random_index(n: usize) -> usize {
    (u32::from_le_bytes(random_bytes::<4>()) as usize) % n
}

/// A random Docker-style name such as `quiet_noether`; `attempt > 0` appends a digit, as Docker does
/// when the plain name is taken.
pub fn random_name(attempt: u32) -> String {
    let a = ADJECTIVES[random_index(ADJECTIVES.len())];
    let s = SURNAMES[random_index(SURNAMES.len())];
    if attempt == 0 {
        format!("{a}_{s}")
    } else {
        format!("{a}_{s}{}", random_index(10))
    }
}

/// Whether `name` is a valid container name (Docker: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`).
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn generated_names_are_valid() {
        for i in 0..50 {
            let n = random_name(i % 2);
            assert!(valid_name(&n), "{n}");
            assert!(n.contains('_'));
        }
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
    }
}
