//! Cost of the totem envelope (AES-256-GCM seal + open with replay check),
//! per packet, for typical payload sizes. Prints figures; asserts nothing.
//!   cargo run --release --example totem_crypto_bench

use std::time::Instant;

use hactl::totem::crypto::{Opener, Sealer};

fn main() {
    let key = [0x5a_u8; 256];
    println!(
        "{:>8} {:>10} {:>12} {:>12} {:>10}",
        "payload", "packets", "seal us/pkt", "open us/pkt", "MB/s"
    );
    for size in [64usize, 512, 1400, 8192, 60_000] {
        let payload = vec![0xab_u8; size];
        let packets = (200_000_000 / (size + 200)).clamp(2_000, 500_000);
        let mut sealer = Sealer::new(Some(&key), "bench", 1, 1);
        let mut opener = Opener::new(Some(&key), "bench");
        let mut sealed = Vec::with_capacity(packets);
        let t = Instant::now();
        for _ in 0..packets {
            let mut out = Vec::with_capacity(size + 64);
            sealer.seal(&payload, &mut out).expect("seal");
            sealed.push(out);
        }
        let seal_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for p in &sealed {
            opener.open(p).expect("open");
        }
        let open_s = t.elapsed().as_secs_f64();
        let mb_s = (size * packets) as f64 / (seal_s + open_s) / 1e6;
        println!(
            "{size:>8} {packets:>10} {:>12.2} {:>12.2} {mb_s:>10.0}",
            seal_s * 1e6 / packets as f64,
            open_s * 1e6 / packets as f64
        );
    }
}
