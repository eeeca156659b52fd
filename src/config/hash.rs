//! FNV-1a 64, written out so that a server's spec hash never changes with the Rust version (std's
//! `DefaultHasher` makes no such promise, and the hash names files in the schema cache).

pub(super) struct Fnv1a(u64);

impl Fnv1a {
    pub(super) fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Writes a length-prefixed field, so that `["ab", "c"]` and `["a", "bc"]` differ.
    pub(super) fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.write(bytes);
    }

    pub(super) fn count(&mut self, n: usize) {
        self.write(&(n as u64).to_le_bytes());
    }

    pub(super) fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes`: a stable, dependency-free hash for names and fingerprints.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv(bytes: &[u8]) -> u64 {
        let mut hasher = Fnv1a::new();
        hasher.write(bytes);
        hasher.finish()
    }

    #[test]
    fn matches_published_test_vectors() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
