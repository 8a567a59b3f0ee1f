//! Scan layer, raw packets: the receive side on a memory-mapped
//! `PACKET_RX_RING` (TPACKET_V3), with a classic BPF filter in the kernel
//! that passes only replies to our source ports.
//!
//! The kernel writes received packets into blocks of a ring shared with
//! us; a block is handed over when it is full or after
//! [`BLOCK_TIMEOUT_MS`] (rounded up to the kernel's tick), and reading it
//! costs no system call and no copy. Each packet carries the kernel's
//! receive time, so the wait for a block does not show in round-trip times.
//! The filter drops everything else before it is queued at all: our own
//! outgoing packets, and TCP, UDP and ICMP traffic that is not a reply to
//! one of our probes (an ICMP error counts when the packet it quotes left
//! from one of our source ports).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering, fence};

/// Size of one block of the ring. The kernel hands a block over when it is
/// full or at its time-out, so a ring holds at least as many kernel ticks
/// of replies as it has blocks (16 blocks of 256 KiB overflowed in 64 ms
/// when a loaded machine kept the engine off the CPU, and every lost reply
/// cost a retransmission and a rate cut): many small blocks.
const BLOCK_SIZE: usize = 1 << 15;
/// Blocks of an IPv4 ring (4 MiB: about 32,000 replies, 128 ticks).
pub const BLOCKS_V4: usize = 128;
/// Blocks of an IPv6 ring (1 MiB; most scans send no IPv6 probe).
pub const BLOCKS_V6: usize = 32;
/// A block that is not full is handed over after this long.
pub const BLOCK_TIMEOUT_MS: u32 = 1;
const FRAME_SIZE: usize = 2048;

const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PKTTYPE: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump at instruction `pc` to the absolute instructions
/// `jt` (condition true) and `jf`.
fn jump(pc: usize, op: u32, k: u32, jt: usize, jf: usize) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | op | libc::BPF_K) as u16,
        jt: (jt - pc - 1) as u8,
        jf: (jf - pc - 1) as u8,
        k,
    }
}

/// The filter of a cooked packet socket (data from the IP header on) of
/// `family` (4 or 6): drop our own outgoing packets; pass TCP and UDP
/// packets to a port in `sports`, and ICMP destination unreachables quoting
/// a packet from one; drop the rest (IPv6: headers other than TCP, UDP and
/// ICMPv6 are passed, the parser judges what follows them).
pub fn reply_filter(family: u8, sports: (u16, u16)) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JGE, BPF_JGT,
        BPF_K, BPF_LD, BPF_LDX, BPF_LSH, BPF_MISC, BPF_MSH, BPF_RET, BPF_TAX, BPF_W, BPF_X,
    };
    let (lo, hi) = (sports.0 as u32, sports.1 as u32);
    let out = libc::PACKET_OUTGOING as u32;
    let mut f = vec![stmt(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE)];
    if family == 4 {
        const TU: usize = 6;
        const ICMP: usize = 10;
        const ACCEPT: usize = 21;
        const DROP: usize = 22;
        f.extend([
            jump(1, BPF_JEQ, out, DROP, 2),
            stmt(BPF_LD | BPF_B | BPF_ABS, 9),
            jump(3, BPF_JEQ, 1, ICMP, 4),
            jump(4, BPF_JEQ, 6, TU, 5),
            jump(5, BPF_JEQ, 17, TU, DROP),
            // TU: the destination port.
            stmt(BPF_LDX | BPF_B | BPF_MSH, 0),
            stmt(BPF_LD | BPF_H | BPF_IND, 2),
            jump(8, BPF_JGE, lo, 9, DROP),
            jump(9, BPF_JGT, hi, DROP, ACCEPT),
            // ICMP: type 3, and the quoted packet's source port.
            stmt(BPF_LDX | BPF_B | BPF_MSH, 0),
            stmt(BPF_LD | BPF_B | BPF_IND, 0),
            jump(12, BPF_JEQ, 3, 13, DROP),
            stmt(BPF_LD | BPF_B | BPF_IND, 8),
            stmt(BPF_ALU | BPF_AND | BPF_K, 0x0f),
            stmt(BPF_ALU | BPF_LSH | BPF_K, 2),
            stmt(BPF_ALU | BPF_ADD | BPF_X, 0),
            stmt(BPF_MISC | BPF_TAX, 0),
            stmt(BPF_LD | BPF_H | BPF_IND, 8),
            jump(19, BPF_JGE, lo, 20, DROP),
            jump(20, BPF_JGT, hi, DROP, ACCEPT),
        ]);
    } else {
        const TU: usize = 6;
        const ICMP: usize = 9;
        const ACCEPT: usize = 14;
        const DROP: usize = 15;
        f.extend([
            jump(1, BPF_JEQ, out, DROP, 2),
            stmt(BPF_LD | BPF_B | BPF_ABS, 6),
            jump(3, BPF_JEQ, 58, ICMP, 4),
            jump(4, BPF_JEQ, 6, TU, 5),
            jump(5, BPF_JEQ, 17, TU, ACCEPT),
            // TU: the destination port after the fixed header.
            stmt(BPF_LD | BPF_H | BPF_ABS, 40 + 2),
            jump(7, BPF_JGE, lo, 8, DROP),
            jump(8, BPF_JGT, hi, DROP, ACCEPT),
            // ICMPv6: type 1, and the quoted packet's source port.
            stmt(BPF_LD | BPF_B | BPF_ABS, 40),
            jump(10, BPF_JEQ, 1, 11, DROP),
            stmt(BPF_LD | BPF_H | BPF_ABS, 40 + 8 + 40),
            jump(12, BPF_JGE, lo, 13, DROP),
            jump(13, BPF_JGT, hi, DROP, ACCEPT),
        ]);
    }
    f.push(stmt(BPF_RET | BPF_K, 0xffff));
    f.push(stmt(BPF_RET | BPF_K, 0));
    f
}

/// Packets the kernel dropped on packet socket `fd` (a full ring or
/// receive buffer) since the last call.
pub fn drops(fd: RawFd) -> u64 {
    // tpacket_stats(_v3): packets, drops (, freeze_q_cnt).
    let mut st = [0u32; 3];
    let mut len = mem::size_of_val(&st) as libc::socklen_t;
    // SAFETY: `st` is writable for `len` bytes; the kernel writes at most that.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            st.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 { 0 } else { st[1] as u64 }
}

/// Attaches a classic BPF program to `fd`.
pub fn attach_filter(fd: RawFd, code: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at `code`, which lives across the call; the
    // kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A TPACKET_V3 receive ring mapped over a packet socket.
pub struct RxRing {
    sock: OwnedFd,
    map: *mut u8,
    blocks: usize,
    next: usize,
}

// SAFETY: the mapping is owned by this value alone (like a Box); moving it
// to another thread moves the only access to it.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Puts a ring of `blocks` blocks on `sock` (a packet socket with its
    /// filter attached).
    pub fn new(sock: OwnedFd, blocks: usize) -> io::Result<RxRing> {
        let fd = sock.as_raw_fd();
        let version = libc::tpacket_versions::TPACKET_V3 as i32;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (BLOCK_SIZE * blocks / FRAME_SIZE) as u32,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        // SAFETY: a fresh shared mapping of the ring the kernel just set up
        // on `fd`, of exactly its size; checked for failure below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BLOCK_SIZE * blocks,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            sock,
            map: map.cast(),
            blocks,
            next: 0,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The status word of block `i` (shared with the kernel).
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block `i` < self.blocks lies inside the mapping; its first
        // words are a tpacket_block_desc whose bh1.block_status (offset 8,
        // 4-aligned) the kernel and we hand over to each other.
        unsafe { &*(self.map.add(i * BLOCK_SIZE + 8) as *const AtomicU32) }
    }

    /// Hands every packet of the blocks the kernel has handed over to `f`
    /// (from its IP header on, with its receive time: nanoseconds since
    /// the Unix epoch) and gives the blocks back; returns how many packets
    /// there were.
    pub fn drain(&mut self, f: &mut dyn FnMut(&[u8], u64)) -> usize {
        let mut total = 0;
        for _ in 0..self.blocks {
            let status = self.status(self.next);
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            fence(Ordering::Acquire);
            // SAFETY: the block is ours until its status is given back; it
            // lies inside the mapping.
            let block = unsafe {
                std::slice::from_raw_parts(self.map.add(self.next * BLOCK_SIZE), BLOCK_SIZE)
            };
            total += walk_block(block, f);
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % self.blocks;
        }
        total
    }
}

/// The packets of one handed-over block; offsets the kernel wrote are
/// checked against the block, so a bad one ends the walk, never a read
/// outside it.
fn walk_block(block: &[u8], f: &mut dyn FnMut(&[u8], u64)) -> usize {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(block.get(at..at + 4)?.try_into().ok()?))
    };
    let half = |at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(block.get(at..at + 2)?.try_into().ok()?))
    };
    // tpacket_block_desc: version, offset_to_priv, then bh1: block_status,
    // num_pkts, offset_to_first_pkt.
    let (Some(num), Some(mut off)) = (word(12), word(16)) else {
        return 0;
    };
    let mut n = 0;
    for _ in 0..num {
        let at = off as usize;
        // tpacket3_hdr: next offset, sec, nsec, snaplen, len, status,
        // mac (u16), net (u16).
        let (Some(next), Some(snap), Some(net)) = (word(at), word(at + 12), half(at + 26)) else {
            break;
        };
        let from = at + net as usize;
        let (sec, nsec) = (word(at + 4).unwrap_or(0), word(at + 8).unwrap_or(0));
        if let Some(pkt) = block.get(from..from + snap as usize) {
            f(pkt, sec as u64 * 1_000_000_000 + nsec as u64);
            n += 1;
        }
        if next == 0 {
            break;
        }
        off += next;
    }
    n
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.map.cast(), BLOCK_SIZE * self.blocks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_jump_inside_the_program_and_end_in_returns() {
        for family in [4, 6] {
            let f = reply_filter(family, (61000, 65535));
            for (pc, i) in f.iter().enumerate() {
                if i.code as u32 & 0x07 == libc::BPF_JMP {
                    assert!(
                        pc + 1 + (i.jt as usize) < f.len(),
                        "family {family} pc {pc}"
                    );
                    assert!(
                        pc + 1 + (i.jf as usize) < f.len(),
                        "family {family} pc {pc}"
                    );
                }
            }
            let ret = |i: &libc::sock_filter| i.code as u32 == libc::BPF_RET | libc::BPF_K;
            assert!(f[f.len() - 2..].iter().all(ret));
            assert_eq!((f[f.len() - 2].k, f[f.len() - 1].k), (0xffff, 0));
        }
    }

    #[test]
    fn a_block_with_bad_offsets_ends_the_walk_without_reading_outside() {
        let mut block = vec![0u8; 256];
        block[12..16].copy_from_slice(&3u32.to_ne_bytes()); // 3 packets claimed
        block[16..20].copy_from_slice(&48u32.to_ne_bytes());
        // First packet: next at +64, snaplen 4, net offset 32.
        block[48..52].copy_from_slice(&64u32.to_ne_bytes());
        block[60..64].copy_from_slice(&4u32.to_ne_bytes());
        block[74..76].copy_from_slice(&32u16.to_ne_bytes());
        block[80..84].copy_from_slice(b"abcd");
        // Second packet: a snaplen past the end.
        block[112 + 12..112 + 16].copy_from_slice(&4000u32.to_ne_bytes());
        block[112..116].copy_from_slice(&1000u32.to_ne_bytes());
        let mut got = Vec::new();
        block[52..56].copy_from_slice(&7u32.to_ne_bytes()); // tp_sec
        let n = walk_block(&block, &mut |p, ts| got.push((p.to_vec(), ts)));
        assert_eq!((n, got), (1, vec![(b"abcd".to_vec(), 7_000_000_000)]));
    }
}
