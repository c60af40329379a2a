//! Python's number behaviour where the reference's output depends on it.
//!
//! `round(x, n)` in Python rounds the exact binary value of `x` half-to-even
//! to `n` decimals and reads the decimal back as the nearest double. The
//! usual case is done in integers (this runs three times per model and view,
//! and formatting through a `String` would be most of a model's cost):
//! `x * 10^n` is exact in 128 bits, rounded half-to-even there, and when
//! that integer `N` is below 2^53 both `N` and `10^n` are exact doubles, so
//! the one correctly rounded division `N / 10^n` is the nearest double to
//! the decimal. Anything else goes through Rust's `{:.n}` formatting, which
//! rounds the exact binary value the same way, and parsing back.

/// `10^n` for every `n` whose power is an exact double.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// Python's `round(x, ndigits)` for a finite `x` (non-finite values pass through).
pub fn round(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    round_exact(x, ndigits).unwrap_or_else(|| format!("{x:.ndigits$}").parse().unwrap_or(x))
}

/// The integer path of [`round`]; `None` when it does not apply.
fn round_exact(x: f64, ndigits: usize) -> Option<f64> {
    let power = *POWERS_OF_TEN.get(ndigits)?;
    // x = mantissa * 2^exponent, exactly.
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = u128::from(bits & ((1u64 << 52) - 1));
    let (mantissa, exponent) =
        if biased == 0 { (fraction, -1074) } else { (fraction | (1u128 << 52), biased - 1075) };
    // mantissa < 2^53 and 10^22 < 2^74: the product fits in 128 bits.
    let scaled = mantissa * power as u128;
    let n = if exponent >= 0 {
        scaled.checked_shl(exponent as u32).filter(|v| v >> exponent == scaled)?
    } else {
        let shift = exponent.unsigned_abs();
        if shift >= 128 {
            0 // below 2^-1 before rounding: rounds to zero
        } else {
            let whole = scaled >> shift;
            let rest = scaled - (whole << shift);
            let half = 1u128 << (shift - 1);
            if rest > half || (rest == half && whole & 1 == 1) {
                whole + 1
            } else {
                whole
            }
        }
    };
    if n >= 1u128 << 53 {
        return None;
    }
    Some((n as f64 / power).copysign(x))
}

#[cfg(test)]
mod tests {
    use super::{round, round_exact};

    #[test]
    fn matches_python_round() {
        // Values checked against CPython 3.12.
        assert_eq!(round(2.675, 2), 2.67); // 2.675 is 2.67499999... in binary
        assert_eq!(round(0.125, 2), 0.12); // exact half: to even
        assert_eq!(round(0.375, 2), 0.38);
        assert_eq!(round(2.5, 0), 2.0);
        assert_eq!(round(3.5, 0), 4.0);
        assert_eq!(round(21.41055, 3), 21.411);
        assert_eq!(round(-1.005, 2), -1.0);
        assert_eq!(round(1e300, 2), 1e300);
        assert!(round(-0.001, 2).is_sign_negative() && round(-0.001, 2) == 0.0);
        assert_eq!(round(5e-324, 4), 0.0);
    }

    #[test]
    fn the_integer_path_agrees_with_formatting() {
        let by_formatting = |x: f64, n: usize| -> f64 { format!("{x:.n$}").parse().unwrap() };
        // A deterministic spread of magnitudes and digit patterns (xorshift).
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for i in 0..50_000 {
            let raw = next();
            let x = match i % 4 {
                0 => f64::from_bits(raw >> 2 | 0x3000_0000_0000_0000) % 1e6, // wide exponents
                1 => (raw % 10_000_000) as f64 / 1000.0 + 0.0005,            // near halves
                2 => (raw % 1_000_000) as f64 / 3.0,
                _ => -((raw % 100_000) as f64) / 7.0,
            };
            for n in [0, 1, 2, 4, 7] {
                if let Some(fast) = round_exact(x, n) {
                    assert_eq!(fast.to_bits(), by_formatting(x, n).to_bits(), "round({x:e}, {n})");
                    checked += 1;
                }
            }
        }
        assert!(checked > 200_000);
    }
}
