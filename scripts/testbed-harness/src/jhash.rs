//! The mark nftables' `jhash` expression gives an ICMP packet, so that tests can predict
//! which way a load balancer sends an ICMP flow.
//!
//! jpgw runs `meta mark set jhash ip saddr . ip daddr . icmp type . icmp code . icmp
//! checksum mod 2 seed SEED offset 1`. nft loads each field of the concatenation into its
//! own 32-bit register, zero-padded (so 1- and 2-byte fields take 4 bytes), and the
//! kernel (`nft_jhash_eval`) hashes those 20 bytes with the Linux `jhash()` (Bob
//! Jenkins' lookup3) and scales the result into `[0, modulus)` with
//! `reciprocal_scale()`.

use std::net::Ipv4Addr;

use crate::manifest::IcmpJhash;

const JHASH_INITVAL: u32 = 0xdead_beef;

/// Linux `jhash(key, length, initval)` (include/linux/jhash.h).
pub fn jhash(key: &[u8], initval: u32) -> u32 {
    let mut a = JHASH_INITVAL
        .wrapping_add(key.len() as u32)
        .wrapping_add(initval);
    let mut b = a;
    let mut c = a;
    let mut k = key;
    // The kernel reads words in CPU order; the testbed runs on little-endian machines.
    let word = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    while k.len() > 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    // Tail of 1..=12 bytes, added byte by byte as in the kernel's switch fall-through.
    for (i, &byte) in k.iter().enumerate() {
        let shifted = u32::from(byte) << (8 * (i % 4));
        match i / 4 {
            0 => a = a.wrapping_add(shifted),
            1 => b = b.wrapping_add(shifted),
            _ => c = c.wrapping_add(shifted),
        }
    }
    final_mix(&mut a, &mut b, &mut c);
    c
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// Linux `reciprocal_scale(val, ep_ro)`: maps a hash into `[0, ep_ro)`.
pub fn reciprocal_scale(val: u32, ep_ro: u32) -> u32 {
    ((u64::from(val) * u64::from(ep_ro)) >> 32) as u32
}

/// The mark the node's ICMP jhash rule gives an ICMP packet with these fields
/// (`checksum` as it appears on the wire, i.e. the big-endian field value).
pub fn icmp_mark(
    cfg: &IcmpJhash,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_type: u8,
    icmp_code: u8,
    checksum: u16,
) -> u32 {
    let mut key = [0u8; 20];
    key[0..4].copy_from_slice(&src.octets());
    key[4..8].copy_from_slice(&dst.octets());
    key[8] = icmp_type;
    key[12] = icmp_code;
    key[16..18].copy_from_slice(&checksum.to_be_bytes());
    reciprocal_scale(jhash(&key, cfg.seed), cfg.modulus) + cfg.offset
}

#[cfg(test)]
mod tests {
    use super::*;

    // lookup3's published self-test vectors for hashlittle(), which Linux jhash() equals
    // on little-endian machines: hashlittle("", 0) = 0xdeadbeef,
    // hashlittle("Four score and seven years ago", 0) = 0x17770551, with initval 1:
    // 0xcd628161.
    #[test]
    fn matches_lookup3_vectors() {
        assert_eq!(jhash(b"", 0), 0xdead_beef);
        assert_eq!(jhash(b"Four score and seven years ago", 0), 0x1777_0551);
        assert_eq!(jhash(b"Four score and seven years ago", 1), 0xcd62_8161);
    }

    #[test]
    fn scale_stays_in_range() {
        assert_eq!(reciprocal_scale(0, 2), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 2), 1);
        assert_eq!(reciprocal_scale(0x8000_0000, 2), 1);
        assert_eq!(reciprocal_scale(0x7fff_ffff, 2), 0);
    }

    #[test]
    fn marks_spread_over_both_tables() {
        let cfg = IcmpJhash {
            seed: 0x6e6b_7074,
            modulus: 2,
            offset: 1,
            fields: Vec::new(),
            tables: std::collections::BTreeMap::new(),
        };
        let src = Ipv4Addr::new(49, 212, 10, 2);
        let dst = Ipv4Addr::new(175, 45, 176, 1);
        let marks: Vec<u32> = (0..64u16)
            .map(|c| icmp_mark(&cfg, src, dst, 8, 0, c))
            .collect();
        assert!(marks.iter().all(|m| *m == 1 || *m == 2));
        assert!(marks.contains(&1) && marks.contains(&2));
    }
}
