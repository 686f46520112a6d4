//! Pacemaker scores: integers saturating at ±INFINITY (1,000,000).
//!
//! Addition follows Pacemaker: anything + INFINITY = INFINITY, anything −
//! INFINITY = −INFINITY, and INFINITY + −INFINITY = −INFINITY (a ban wins).

use std::fmt;
use std::ops::{Add, Neg};

/// The value Pacemaker calls INFINITY.
pub const INFINITY: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(i64);

impl Score {
    pub const ZERO: Score = Score(0);
    pub const INFINITY: Score = Score(INFINITY);
    pub const MINUS_INFINITY: Score = Score(-INFINITY);

    /// A score from an integer, clamped to ±INFINITY as Pacemaker does.
    pub fn new(value: i64) -> Score {
        Score(value.clamp(-INFINITY, INFINITY))
    }

    pub fn value(self) -> i64 {
        self.0
    }

    pub fn is_infinite(self) -> bool {
        self.0.abs() == INFINITY
    }

    /// Parses the spellings crmsh accepts: an integer, `INFINITY`,
    /// `+INFINITY`, `-INFINITY`, `inf`, `+inf`, `-inf` (case-insensitive).
    /// Returns `None` for anything else. Integers beyond ±INFINITY clamp.
    pub fn parse(text: &str) -> Option<Score> {
        let t = text.trim();
        let (negative, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Some(if negative {
                Score::MINUS_INFINITY
            } else {
                Score::INFINITY
            });
        }
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Digits only, so the only failure is overflow: clamp.
        let magnitude = body.parse::<i64>().unwrap_or(i64::MAX);
        Some(Score::new(if negative { -magnitude } else { magnitude }))
    }
}

impl Add for Score {
    type Output = Score;

    fn add(self, other: Score) -> Score {
        if self.0 == -INFINITY || other.0 == -INFINITY {
            Score::MINUS_INFINITY
        } else if self.0 == INFINITY || other.0 == INFINITY {
            Score::INFINITY
        } else {
            Score::new(self.0 + other.0)
        }
    }
}

impl Neg for Score {
    type Output = Score;

    fn neg(self) -> Score {
        Score(-self.0)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            INFINITY => f.write_str("INFINITY"),
            v if v == -INFINITY => f.write_str("-INFINITY"),
            v => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crmsh_spellings_parse() {
        for (text, value) in [
            ("INFINITY", INFINITY),
            ("+INFINITY", INFINITY),
            ("-INFINITY", -INFINITY),
            ("inf", INFINITY),
            ("+inf", INFINITY),
            ("-inf", -INFINITY),
            ("Infinity", INFINITY),
            ("200", 200),
            ("-50", -50),
            ("+7", 7),
            ("5000000", INFINITY),
        ] {
            assert_eq!(Score::parse(text), Some(Score::new(value)), "{text}");
        }
        for bad in ["", "-", "infinit", "1.5", "ten", "--1"] {
            assert_eq!(Score::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn addition_saturates_and_bans_win() {
        let inf = Score::INFINITY;
        let minf = Score::MINUS_INFINITY;
        assert_eq!(inf + Score::new(5), inf);
        assert_eq!(Score::new(5) + minf, minf);
        assert_eq!(inf + minf, minf);
        assert_eq!(minf + inf, minf);
        assert_eq!(Score::new(999_999) + Score::new(10), inf);
        assert_eq!(Score::new(100) + Score::new(-30), Score::new(70));
    }

    #[test]
    fn display_round_trips() {
        for s in [Score::INFINITY, Score::MINUS_INFINITY, Score::new(-3)] {
            assert_eq!(Score::parse(&s.to_string()), Some(s));
        }
    }
}
