//! Import layer: a compact, deduplicated set of ports.
//!
//! nmap folds the ports it does not list into `<extraports>`, and recent
//! versions name them (`ports="1-21,23-65535"`). Expanding that per port
//! and per address is what made a 9 KB file need 4 GB; this set keeps
//! sorted, disjoint, inclusive intervals instead (at most 32,768 of them),
//! so a repeated or overlapping list costs nothing more.

/// Sorted, disjoint, non-adjacent inclusive port intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    pub fn new() -> Self {
        PortRanges(Vec::new())
    }

    /// Parses nmap's list (`1-3,7`); malformed parts are skipped.
    pub fn parse(spec: &str) -> Self {
        let mut r = PortRanges::new();
        for part in spec.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(lo), Ok(hi)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>())
                && lo <= hi
            {
                r.insert(lo, hi);
            }
        }
        r
    }

    /// Adds `lo..=hi`, merging with overlapping or adjacent intervals.
    pub fn insert(&mut self, lo: u16, hi: u16) {
        let v = &mut self.0;
        // First interval that could touch [lo, hi]: its end ≥ lo - 1.
        let start = v.partition_point(|&(_, e)| (e as u32) + 1 < lo as u32);
        let mut end = start;
        let (mut nlo, mut nhi) = (lo, hi);
        while end < v.len() && (v[end].0 as u32) <= hi as u32 + 1 {
            nlo = nlo.min(v[end].0);
            nhi = nhi.max(v[end].1);
            end += 1;
        }
        v.splice(start..end, [(nlo, nhi)]);
    }

    /// Adds every interval of `other`.
    pub fn union(&mut self, other: &PortRanges) {
        for &(a, b) in &other.0 {
            self.insert(a, b);
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|&(_, e)| e < port);
        self.0.get(i).is_some_and(|&(s, _)| s <= port)
    }

    /// How many ports.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|&(a, b)| (b - a) as u64 + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lowest port.
    pub fn first(&self) -> Option<u16> {
        self.0.first().map(|r| r.0)
    }

    /// The ports of `self` that are not in `other`.
    pub fn minus(&self, other: &PortRanges) -> PortRanges {
        let mut out = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.0 {
            let mut lo = a as u32;
            let hi = b as u32;
            while j < other.0.len() && (other.0[j].1 as u32) < lo {
                j += 1;
            }
            let mut k = j;
            while lo <= hi && k < other.0.len() && (other.0[k].0 as u32) <= hi {
                let (oa, ob) = (other.0[k].0 as u32, other.0[k].1 as u32);
                if oa > lo {
                    out.push((lo as u16, (oa - 1) as u16));
                }
                lo = lo.max(ob + 1);
                k += 1;
            }
            if lo <= hi {
                out.push((lo as u16, hi as u16));
            }
        }
        PortRanges(out)
    }

    /// The ports, lazily, in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..=b)
    }

    /// The intervals.
    pub fn intervals(&self) -> &[(u16, u16)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlaps_and_repeats() {
        let r = PortRanges::parse("1-3,7,x,9-8,4,6-6,65535,1-65535,");
        assert_eq!(r.intervals(), &[(1, 65535)]);
        let r = PortRanges::parse(&"1-65535,".repeat(2000));
        assert_eq!(r.len(), 65535);
        let r = PortRanges::parse("1-3,7,10-12,5");
        assert_eq!(r.intervals(), &[(1, 3), (5, 5), (7, 7), (10, 12)]);
        assert_eq!(r.iter().collect::<Vec<_>>(), [1, 2, 3, 5, 7, 10, 11, 12]);
        assert!(r.contains(11) && !r.contains(4) && !r.contains(13));
        assert_eq!(r.first(), Some(1));
    }

    #[test]
    fn subtracts() {
        let a = PortRanges::parse("1-10,20-30,65535");
        let b = PortRanges::parse("0,3-4,10-21,25,65535");
        assert_eq!(
            a.minus(&b).intervals(),
            &[(1, 2), (5, 9), (22, 24), (26, 30)]
        );
        assert_eq!(a.minus(&PortRanges::new()), a);
        assert!(a.minus(&PortRanges::parse("0-65535")).is_empty());
    }
}
