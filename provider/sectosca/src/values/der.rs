//! The SubjectPublicKeyInfo of a PEM public key, read far enough to know its type and size.

use base64::Engine as _;

use super::{KeyKind, PublicKeyPem};

// DER encodings of the algorithm identifiers we accept, as they appear inside an SPKI.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Reads one DER element: its tag, its content, and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The size in bits of an RSA key's modulus, from its SubjectPublicKeyInfo:
/// SEQUENCE { SEQUENCE { algorithm }, BIT STRING { SEQUENCE { INTEGER n, INTEGER e } } }.
fn rsa_modulus_bits(spki: &[u8]) -> Option<usize> {
    let (0x30, body, _) = der_element(spki)? else { return None };
    let (0x30, _, rest) = der_element(body)? else { return None };
    let (0x03, bits, _) = der_element(rest)? else { return None };
    let (0x30, key, _) = der_element(bits.get(1..)?)? else { return None };
    let (0x02, modulus, _) = der_element(key)? else { return None };
    let significant: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return Some(0),
    };
    Some(significant.len() * 8 - significant[0].leading_zeros() as usize)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl PublicKeyPem {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let body = text
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(if text.contains("PRIVATE KEY") {
                "this is a PRIVATE key: never put private keys in a policy"
            } else {
                "expected a PEM block -----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----"
            })?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der =
            base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| "the PEM body is not valid base64")?;
        if der.first() != Some(&0x30) || der.len() < 32 {
            return Err("the PEM body is not a DER SubjectPublicKeyInfo");
        }
        let head = &der[..der.len().min(32)];
        let kind = if contains(head, OID_EC_PUBLIC_KEY) && contains(head, OID_P256) {
            KeyKind::EcP256
        } else if contains(head, OID_EC_PUBLIC_KEY) && contains(head, OID_P384) {
            KeyKind::EcP384
        } else if contains(head, OID_RSA) {
            KeyKind::Rsa
        } else if contains(head, OID_ED25519) {
            KeyKind::Ed25519
        } else {
            return Err("unsupported key type: use EC P-256, EC P-384, RSA or Ed25519");
        };
        // The SubjectPublicKeyInfo of each key type has a fixed size (RSA: at least that of
        // a 2048-bit modulus); anything else is a truncated or weak key.
        let size_ok = match kind {
            // Uncompressed or compressed curve points.
            KeyKind::EcP256 => der.len() == 91 || der.len() == 59,
            KeyKind::EcP384 => der.len() == 120 || der.len() == 72,
            KeyKind::Ed25519 => der.len() == 44,
            KeyKind::Rsa => rsa_modulus_bits(&der).is_some_and(|bits| bits >= 2048),
        };
        if !size_ok {
            return Err(if kind == KeyKind::Rsa {
                "the RSA key is shorter than 2048 bits"
            } else {
                "the key is truncated or malformed: its DER has the wrong length for its type"
            });
        }
        let pem = text.trim().to_owned() + "\n";
        Ok(Self { kind, pem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_recognised_by_type() {
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----";
        assert_eq!(PublicKeyPem::parse(p256).map(|k| k.kind), Ok(KeyKind::EcP256));
        assert!(PublicKeyPem::parse("-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----").is_err());
        assert!(PublicKeyPem::parse("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----").is_err());
    }
}
