//! Shamir's secret sharing over GF(2^8), combining side only, as sops (HashiCorp Vault's
//! implementation) splits a data key across key groups: each share is the polynomial's values
//! for each byte followed by its x coordinate.

/// The secret from `parts` (at least two shares of equal length); `None` when they are not
/// shares (too short, unequal, or two with the same x).
pub fn combine(parts: &[&[u8]]) -> Option<Vec<u8>> {
    let len = parts.first()?.len();
    if parts.len() < 2 || len < 2 || parts.iter().any(|p| p.len() != len) {
        return None;
    }
    let xs: Vec<u8> = parts.iter().map(|p| p[len - 1]).collect();
    if (1..xs.len()).any(|i| xs[..i].contains(&xs[i])) {
        return None;
    }
    let secret = (0..len - 1)
        .map(|byte| {
            let ys: Vec<u8> = parts.iter().map(|p| p[byte]).collect();
            interpolate_at_zero(&xs, &ys)
        })
        .collect();
    Some(secret)
}

/// Lagrange interpolation of the points (xs, ys) evaluated at x = 0.
fn interpolate_at_zero(xs: &[u8], ys: &[u8]) -> u8 {
    let mut result = 0;
    for (i, (&xi, &yi)) in xs.iter().zip(ys).enumerate() {
        let mut basis = 1;
        for (j, &xj) in xs.iter().enumerate() {
            if i != j {
                // (0 - xj) / (xi - xj); subtraction is XOR in GF(2^8).
                basis = mul(basis, mul(xj, inverse(xi ^ xj)));
            }
        }
        result ^= mul(yi, basis);
    }
    result
}

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (the AES field).
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// a^254 = a^-1 in GF(2^8) (0 for 0, never asked here: the x coordinates differ).
fn inverse(a: u8) -> u8 {
    let mut result = 1;
    let mut base = a;
    let mut exp = 254u32;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits as Vault does, with fixed coefficients, to test combining.
    fn split(secret: &[u8], xs: &[u8], coefficients: &[u8]) -> Vec<Vec<u8>> {
        xs.iter()
            .map(|&x| {
                let mut share: Vec<u8> = secret
                    .iter()
                    .map(|&s| {
                        // s + c1 x + c2 x^2 …
                        let mut y = s;
                        let mut power = 1;
                        for &c in coefficients {
                            power = mul(power, x);
                            y ^= mul(c, power);
                        }
                        y
                    })
                    .collect();
                share.push(x);
                share
            })
            .collect()
    }

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(0x57, 0x83), 0xc1); // FIPS-197's example
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1);
        }
    }

    #[test]
    fn any_threshold_of_shares_gives_the_secret() {
        let secret = b"a 32-byte data key, more or less";
        let shares = split(secret, &[3, 77, 200], &[0x1f, 0xe0]);
        let refs: Vec<&[u8]> = shares.iter().map(Vec::as_slice).collect();
        assert_eq!(combine(&refs).unwrap(), secret);
        assert_eq!(combine(&[refs[2], refs[0], refs[1]]).unwrap(), secret);
        // Two of a threshold-3 split give something else.
        assert_ne!(combine(&refs[..2]).unwrap(), secret);
        assert_eq!(combine(&[refs[0], refs[0]]), None);
        assert_eq!(combine(&refs[..1]), None);
    }
}
