//! RMCP+ cryptography for cipher suites 3 and 17: the RAKP key exchange
//! codes, the session keys (SIK, K1, K2) and the protection of session
//! packets (HMAC-SHA1-96 / HMAC-SHA256-128 integrity, AES-CBC-128
//! confidentiality).
//!
//! Pure functions on byte slices. [`CipherSuite::from_id`] is the one door
//! through which a suite enters hactl: it admits 3 and 17 and refuses every
//! other number, so a weak or unauthenticated suite (0, 1, 2, the RC4 and MD5
//! suites) cannot be asked for by any code path.
//!
//! Formulas (IPMI v2.0 §13.28–13.32, checked against ipmitool and ipmi_sim;
//! see `../shared/research/fencing.md` §2.5–2.6):
//! - RAKP2 code  = HMAC_Kuid(SIDm ‖ SIDc ‖ Rm ‖ Rc ‖ GUIDc ‖ ROLEm ‖ ULENm ‖ UNAMEm)
//! - RAKP3 code  = HMAC_Kuid(Rc ‖ SIDm ‖ ROLEm ‖ ULENm ‖ UNAMEm)
//! - SIK         = HMAC_(Kg or Kuid)(Rm ‖ Rc ‖ ROLEm ‖ ULENm ‖ UNAMEm)
//! - RAKP4 ICV   = HMAC_SIK(Rm ‖ SIDc ‖ GUIDc), truncated to 12 / 16 bytes
//! - K1 = HMAC_SIK(20 × 0x01), K2 = HMAC_SIK(20 × 0x02); AES key = K2[0..16]
//! - packet code = HMAC_K1(auth type … next header), truncated to 12 / 16 bytes
//!
//! Session IDs enter the HMACs as their 4 little-endian wire bytes.

use std::fmt;

use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};

use super::wire::{self, Algorithms, V20Header};

/// Bytes of AES-128's block, key and CBC initialisation vector.
pub const AES_BLOCK_BYTES: usize = 16;
/// The K1/K2 derivation constants are 20 bytes for every suite (the spec's
/// "const 1" and "const 2"; ipmitool and FreeIPMI use 20 for SHA-256 too).
const KEY_CONSTANT_BYTES: usize = 20;
/// Next-header byte that closes the integrity trailer.
const NEXT_HEADER: u8 = 0x07;

/// A cipher suite hactl accepts. There is no way to build one for any other
/// suite number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    Suite3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    Suite17,
}

/// A suite number hactl refuses to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedSuite(pub u8);

impl fmt::Display for RefusedSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.0 {
            0 => "it has no authentication, integrity or encryption: any password is accepted",
            1 => "it has no integrity and no encryption",
            2 => "it has no encryption",
            4 | 5 | 9 | 10 | 13 | 14 => "it uses the broken RC4 cipher",
            6..=8 | 11 | 12 => "it uses MD5",
            _ => "hactl supports cipher suites 3 and 17 only",
        };
        write!(f, "cipher suite {} is refused: {why}", self.0)
    }
}

impl CipherSuite {
    pub fn from_id(id: u8) -> Result<CipherSuite, RefusedSuite> {
        match id {
            3 => Ok(CipherSuite::Suite3),
            17 => Ok(CipherSuite::Suite17),
            other => Err(RefusedSuite(other)),
        }
    }

    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 3,
            CipherSuite::Suite17 => 17,
        }
    }

    /// The algorithm numbers offered in Open Session, and required back.
    pub fn algorithms(self) -> Algorithms {
        match self {
            CipherSuite::Suite3 => Algorithms {
                authentication: 0x01,  // RAKP-HMAC-SHA1
                integrity: 0x01,       // HMAC-SHA1-96
                confidentiality: 0x01, // AES-CBC-128
            },
            CipherSuite::Suite17 => Algorithms {
                authentication: 0x03,  // RAKP-HMAC-SHA256
                integrity: 0x04,       // HMAC-SHA256-128
                confidentiality: 0x01, // AES-CBC-128
            },
        }
    }

    /// Bytes of the RAKP2/RAKP3 key exchange codes and of the SIK: the full
    /// HMAC output.
    pub fn digest_len(self) -> usize {
        match self {
            CipherSuite::Suite3 => 20,
            CipherSuite::Suite17 => 32,
        }
    }

    /// Bytes of the RAKP4 integrity check value and of every packet's
    /// integrity code: the truncated HMAC (the "-96" and "-128").
    pub fn icv_len(self) -> usize {
        match self {
            CipherSuite::Suite3 => 12,
            CipherSuite::Suite17 => 16,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            CipherSuite::Suite3 => mac::<Hmac<sha1::Sha1>>(key, parts),
            CipherSuite::Suite17 => mac::<Hmac<sha2::Sha256>>(key, parts),
        }
    }

    /// Constant-time check that `tag` is HMAC_key(parts) truncated to its length.
    fn verify(self, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        match self {
            CipherSuite::Suite3 => verify::<Hmac<sha1::Sha1>>(key, parts, tag),
            CipherSuite::Suite17 => verify::<Hmac<sha2::Sha256>>(key, parts, tag),
        }
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn verify<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    if tag.is_empty() {
        return false;
    }
    let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.verify_truncated_left(tag).is_ok()
}

/// Key material that is wiped when dropped, so that passwords and session
/// keys do not linger in freed memory. (Best effort: copies inside the hash
/// states are not reached.)
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keep the compiler from proving the zeroes are never read and
        // removing the fill.
        std::hint::black_box(&self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

/// Everything the RAKP exchange binds together.
#[derive(Clone, Debug)]
pub struct Handshake<'a> {
    /// SIDm: the remote console's (hactl's) session ID.
    pub console_session_id: u32,
    /// SIDc: the BMC's session ID.
    pub bmc_session_id: u32,
    /// Rm: hactl's random number.
    pub rm: [u8; 16],
    /// Rc: the BMC's random number.
    pub rc: [u8; 16],
    /// GUIDc: the BMC's GUID.
    pub guid: [u8; 16],
    /// ROLEm: the whole byte sent in RAKP1, lookup bit included.
    pub role: u8,
    pub username: &'a [u8],
}

impl Handshake<'_> {
    fn ulen(&self) -> [u8; 1] {
        [self.username.len() as u8]
    }
}

/// The BMC's proof (RAKP message 2) that it knows the user's password.
pub fn rakp2_auth_code(suite: CipherSuite, kuid: &[u8], h: &Handshake) -> Vec<u8> {
    suite.hmac(kuid, &rakp2_parts(h).each())
}

/// Constant-time check of the RAKP2 key exchange code.
pub fn rakp2_verify(suite: CipherSuite, kuid: &[u8], h: &Handshake, code: &[u8]) -> bool {
    code.len() == suite.digest_len() && suite.verify(kuid, &rakp2_parts(h).each(), code)
}

struct Parts<const N: usize>([Vec<u8>; N]);

impl<const N: usize> Parts<N> {
    fn each(&self) -> Vec<&[u8]> {
        self.0.iter().map(|v| v.as_slice()).collect()
    }
}

fn rakp2_parts(h: &Handshake) -> Parts<8> {
    Parts([
        h.console_session_id.to_le_bytes().to_vec(),
        h.bmc_session_id.to_le_bytes().to_vec(),
        h.rm.to_vec(),
        h.rc.to_vec(),
        h.guid.to_vec(),
        vec![h.role],
        h.ulen().to_vec(),
        h.username.to_vec(),
    ])
}

/// hactl's proof (RAKP message 3) that it knows the user's password.
pub fn rakp3_auth_code(suite: CipherSuite, kuid: &[u8], h: &Handshake) -> Vec<u8> {
    suite.hmac(
        kuid,
        &[
            &h.rc,
            &h.console_session_id.to_le_bytes(),
            &[h.role],
            &h.ulen(),
            h.username,
        ],
    )
}

/// The session integrity key. `key` is the BMC key Kg when the BMC has one,
/// the user's password Kuid otherwise.
pub fn session_integrity_key(suite: CipherSuite, key: &[u8], h: &Handshake) -> SecretBytes {
    SecretBytes::new(suite.hmac(key, &[&h.rm, &h.rc, &[h.role], &h.ulen(), h.username]))
}

/// The RAKP4 integrity check value the BMC must send.
pub fn rakp4_icv(suite: CipherSuite, sik: &[u8], h: &Handshake) -> Vec<u8> {
    let mut v = suite.hmac(sik, &[&h.rm, &h.bmc_session_id.to_le_bytes(), &h.guid]);
    v.truncate(suite.icv_len());
    v
}

/// Constant-time check of the RAKP4 integrity check value.
pub fn rakp4_verify(suite: CipherSuite, sik: &[u8], h: &Handshake, icv: &[u8]) -> bool {
    icv.len() == suite.icv_len()
        && suite.verify(sik, &[&h.rm, &h.bmc_session_id.to_le_bytes(), &h.guid], icv)
}

/// K1 (integrity key) or K2 (its first 16 bytes: the AES key).
fn derived_key(suite: CipherSuite, sik: &[u8], constant: u8) -> SecretBytes {
    SecretBytes::new(suite.hmac(sik, &[&[constant; KEY_CONSTANT_BYTES]]))
}

/// The keys of an established session.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    pub suite: CipherSuite,
    /// K1: the integrity key.
    pub k1: SecretBytes,
    /// K2: its first 16 bytes are the AES-CBC-128 key.
    pub k2: SecretBytes,
}

impl SessionKeys {
    pub fn derive(suite: CipherSuite, sik: &[u8]) -> SessionKeys {
        SessionKeys {
            suite,
            k1: derived_key(suite, sik, 0x01),
            k2: derived_key(suite, sik, 0x02),
        }
    }

    fn aes_key(&self) -> &[u8] {
        &self.k2.expose()[..AES_BLOCK_BYTES]
    }
}

/// Why a session packet was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Not an RMCP+ packet, or its framing is inconsistent.
    Malformed(&'static str),
    /// Not both authenticated and encrypted: hactl's sessions never accept
    /// a clear or unauthenticated message.
    Unprotected,
    /// The integrity code does not match: corrupted, forged, or from another session.
    Integrity,
    /// The ciphertext or its confidentiality padding is malformed.
    Decrypt,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Malformed(why) => write!(f, "malformed packet: {why}"),
            OpenError::Unprotected => f.write_str("packet not both authenticated and encrypted"),
            OpenError::Integrity => f.write_str("integrity check failed"),
            OpenError::Decrypt => f.write_str("decryption failed"),
        }
    }
}

/// Builds an authenticated, encrypted IPMI-message packet for the BMC
/// session `bmc_session_id` with session sequence number `seq`. `iv` must be
/// fresh random bytes for every packet.
pub fn seal(
    keys: &SessionKeys,
    bmc_session_id: u32,
    seq: u32,
    message: &[u8],
    iv: &[u8; AES_BLOCK_BYTES],
) -> Vec<u8> {
    // Confidentiality pad (IPMI §13.29): 1, 2, … n, then n, so that the
    // length is a multiple of the block size; no PKCS#7 on top.
    let pad = (AES_BLOCK_BYTES - (message.len() + 1) % AES_BLOCK_BYTES) % AES_BLOCK_BYTES;
    let mut plain = Vec::with_capacity(message.len() + pad + 1);
    plain.extend_from_slice(message);
    plain.extend((1..=pad).map(|i| i as u8));
    plain.push(pad as u8);
    debug_assert_eq!(plain.len() % AES_BLOCK_BYTES, 0);

    let mut enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(keys.aes_key(), iv)
        .expect("AES-128 key and IV are 16 bytes");
    for chunk in plain.chunks_exact_mut(AES_BLOCK_BYTES) {
        let block = chunk.try_into().expect("16-byte chunk");
        enc.encrypt_block(block);
    }

    let payload_len = u16::try_from(AES_BLOCK_BYTES + plain.len()).expect("IPMI message is short");
    let mut d = wire::encode_v20_header(&V20Header {
        payload_type: wire::PAYLOAD_ENCRYPTED | wire::PAYLOAD_AUTHENTICATED | wire::PAYLOAD_IPMI,
        session_id: bmc_session_id,
        session_seq: seq,
        payload_len,
    });
    d.extend_from_slice(iv);
    d.extend_from_slice(&plain);
    // Integrity pad: 0xFF bytes so that everything from the auth type byte
    // (offset 4) through the next-header byte is a multiple of 4 bytes.
    let integrity_pad = (4 - (d.len() - 4 + 2) % 4) % 4;
    d.extend(std::iter::repeat_n(0xFF, integrity_pad));
    d.push(integrity_pad as u8);
    d.push(NEXT_HEADER);
    let mut code = keys.suite.hmac(keys.k1.expose(), &[&d[4..]]);
    code.truncate(keys.suite.icv_len());
    d.extend_from_slice(&code);
    d
}

/// Checks a session packet's framing and integrity code; returns its header
/// and (still encrypted) payload. The caller then checks the session ID and
/// sequence number, which the integrity code covers, and decrypts.
pub fn verify_packet<'a>(
    keys: &SessionKeys,
    d: &'a [u8],
) -> Result<(V20Header, &'a [u8]), OpenError> {
    let (h, payload, trailer) = wire::decode_v20(d).map_err(|e| OpenError::Malformed(e.0))?;
    if !(h.authenticated() && h.encrypted()) {
        return Err(OpenError::Unprotected);
    }
    let code_len = keys.suite.icv_len();
    // Trailer: integrity pad (0..=3 bytes) ‖ pad length ‖ next header ‖ code.
    if trailer.len() < 2 + code_len {
        return Err(OpenError::Malformed("integrity trailer is too short"));
    }
    let code_at = d.len() - code_len;
    let pad_len = usize::from(d[code_at - 2]);
    if d[code_at - 1] != NEXT_HEADER {
        return Err(OpenError::Malformed("next header byte is not 0x07"));
    }
    if pad_len > 3 || trailer.len() != pad_len + 2 + code_len || !(code_at - 4).is_multiple_of(4) {
        return Err(OpenError::Malformed("integrity pad is inconsistent"));
    }
    if !keys
        .suite
        .verify(keys.k1.expose(), &[&d[4..code_at]], &d[code_at..])
    {
        return Err(OpenError::Integrity);
    }
    Ok((h, payload))
}

/// Decrypts an AES-CBC-128 payload (IV ‖ ciphertext) and strips its
/// confidentiality pad.
pub fn decrypt_payload(keys: &SessionKeys, payload: &[u8]) -> Result<Vec<u8>, OpenError> {
    if payload.len() < 2 * AES_BLOCK_BYTES || !payload.len().is_multiple_of(AES_BLOCK_BYTES) {
        return Err(OpenError::Decrypt);
    }
    let (iv, ct) = payload.split_at(AES_BLOCK_BYTES);
    let mut dec = cbc::Decryptor::<aes::Aes128>::new_from_slices(keys.aes_key(), iv)
        .expect("AES-128 key and IV are 16 bytes");
    let mut plain = ct.to_vec();
    for chunk in plain.chunks_exact_mut(AES_BLOCK_BYTES) {
        let block = chunk.try_into().expect("16-byte chunk");
        dec.decrypt_block(block);
    }
    let pad = usize::from(*plain.last().expect("at least one block"));
    if pad >= AES_BLOCK_BYTES {
        return Err(OpenError::Decrypt);
    }
    let body_len = plain.len() - 1 - pad;
    // The pad is 1, 2, … n: check it, as the BMC (lanserv) does.
    if plain[body_len..plain.len() - 1]
        .iter()
        .enumerate()
        .any(|(i, b)| usize::from(*b) != i + 1)
    {
        return Err(OpenError::Decrypt);
    }
    plain.truncate(body_len);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(username: &[u8]) -> Handshake<'_> {
        Handshake {
            console_session_id: 0xade3_cae3,
            bmc_session_id: 0x1582,
            rm: [0x11; 16],
            rc: [0x22; 16],
            guid: [0xa1; 16],
            role: 0x14,
            username,
        }
    }

    #[test]
    fn only_suites_3_and_17_can_be_built() {
        for id in 0..=u8::MAX {
            let ok = CipherSuite::from_id(id).is_ok();
            assert_eq!(ok, id == 3 || id == 17, "suite {id}");
        }
        assert!(
            RefusedSuite(0)
                .to_string()
                .contains("any password is accepted")
        );
    }

    #[test]
    fn rakp2_verification_rejects_a_code_made_with_another_password() {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let h = handshake(b"admin");
            let good = rakp2_auth_code(suite, b"fxpass", &h);
            assert_eq!(good.len(), suite.digest_len());
            assert!(rakp2_verify(suite, b"fxpass", &h, &good));
            // Zero-padding the password to 20 bytes (Kuid) changes nothing.
            assert!(rakp2_verify(
                suite,
                b"fxpass\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                &h,
                &good
            ));
            assert!(!rakp2_verify(suite, b"fxpasS", &h, &good));
            assert!(
                !rakp2_verify(suite, b"fxpass", &h, &good[..12]),
                "truncated"
            );
            assert!(!rakp2_verify(suite, b"fxpass", &h, &[]));
        }
    }

    #[test]
    fn sealed_packets_open_and_any_flipped_bit_is_caught() {
        for suite in [CipherSuite::Suite3, CipherSuite::Suite17] {
            let keys = SessionKeys::derive(suite, &[7u8; 32]);
            for len in 0..40 {
                let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let d = seal(&keys, 0x1234, 9, &msg, &[3u8; 16]);
                assert_eq!((d.len() - 4 - suite.icv_len()) % 4, 0);
                let (h, payload) = verify_packet(&keys, &d).unwrap();
                assert_eq!((h.session_id, h.session_seq), (0x1234, 9));
                assert_eq!(decrypt_payload(&keys, payload).unwrap(), msg);
                for bit in [8 * 5, 8 * 7, 8 * 20, 8 * (d.len() - 1)] {
                    let mut bad = d.clone();
                    bad[bit / 8] ^= 1;
                    assert!(verify_packet(&keys, &bad).is_err(), "len {len} bit {bit}");
                }
            }
            let other = SessionKeys::derive(suite, &[8u8; 32]);
            let d = seal(&keys, 1, 1, b"x", &[0u8; 16]);
            assert_eq!(verify_packet(&other, &d).unwrap_err(), OpenError::Integrity);
        }
    }

    #[test]
    fn clear_packets_are_refused_even_with_a_valid_layout() {
        let keys = SessionKeys::derive(CipherSuite::Suite3, &[7u8; 20]);
        let mut d = seal(&keys, 1, 1, b"hello", &[0u8; 16]);
        d[5] &= !wire::PAYLOAD_ENCRYPTED;
        assert_eq!(
            verify_packet(&keys, &d).unwrap_err(),
            OpenError::Unprotected
        );
    }
}
