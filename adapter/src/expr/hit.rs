//! Hit conditions over the count of hits whose condition held: `5`,
//! `>= 5`, `% 10` (every 10th).

use anyhow::{anyhow, bail, Result};

use super::Op;

/// A hit condition over the hit count (1 for the first hit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HitCondition {
    Cmp(Op, u64),
    Every(u64),
}

impl HitCondition {
    pub fn parse(s: &str) -> Result<HitCondition> {
        let s = s.trim();
        let num = |t: &str| -> Result<u64> {
            t.trim()
                .parse()
                .map_err(|_| anyhow!("bad hit condition {s:?}: expected a number, `>= N` or `% N`"))
        };
        if let Some(rest) = s.strip_prefix('%') {
            let n = match rest.split_once("==") {
                Some((n, zero)) if num(zero)? == 0 => num(n)?,
                Some(_) => bail!("bad hit condition {s:?}: only `% N == 0` is supported"),
                None => num(rest)?,
            };
            if n == 0 {
                bail!("bad hit condition {s:?}: modulo zero");
            }
            return Ok(HitCondition::Every(n));
        }
        for (p, op) in [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if let Some(rest) = s.strip_prefix(p) {
                return Ok(HitCondition::Cmp(op, num(rest)?));
            }
        }
        Ok(HitCondition::Cmp(Op::Eq, num(s)?))
    }

    pub fn holds(self, hits: u64) -> bool {
        match self {
            HitCondition::Every(n) => hits.is_multiple_of(n),
            HitCondition::Cmp(op, n) => match op {
                Op::Eq => hits == n,
                Op::Ne => hits != n,
                Op::Lt => hits < n,
                Op::Le => hits <= n,
                Op::Gt => hits > n,
                Op::Ge => hits >= n,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_conditions() {
        let h = |s: &str| HitCondition::parse(s).unwrap();
        assert!(h("5").holds(5) && !h("5").holds(6));
        assert!(h(">= 5").holds(7) && !h(">= 5").holds(4));
        assert!(h("% 10 == 0").holds(20) && !h("% 10 == 0").holds(21));
        assert!(h("%3").holds(3));
        assert!(HitCondition::parse("abc").is_err());
    }
}
