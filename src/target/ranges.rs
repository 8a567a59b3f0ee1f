//! Target layer: address sets as sorted, merged, disjoint inclusive ranges
//! with prefix sums. This is what keeps a /8 down to a few bytes and lets
//! the scan schedule fetch the n-th address in O(log ranges) instead of
//! walking or materialising the set.
//!
//! The code is generic over the integer form of an address (`u32` for IPv4,
//! `u128` for IPv6); arithmetic is done in `u128` so neither family can
//! overflow while merging.

/// Integer form of an address family.
pub(crate) trait Addr: Copy + Ord + Into<u128> + TryFrom<u128> {}
impl Addr for u32 {}
impl Addr for u128 {}

/// Sorts and merges overlapping or adjacent ranges. Ranges with
/// `start > end` are dropped (they cannot be produced by the parser, but
/// dropping them keeps the invariant without a panic path).
pub(crate) fn normalize<T: Addr>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.retain(|&(s, e)| s <= e);
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        if let Some(last) = out.last_mut() {
            // `None` means the last range already ends at the family's top
            // address, so everything after it is covered.
            let touches = match Into::<u128>::into(last.1).checked_add(1) {
                Some(next) => s.into() <= next,
                None => true,
            };
            if touches {
                if e > last.1 {
                    last.1 = e;
                }
                continue;
            }
        }
        out.push((s, e));
    }
    out
}

/// `a - b` for two normalized range lists; the result is normalized.
pub(crate) fn subtract<T: Addr>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &(start, end) in a {
        let (start, end): (u128, u128) = (start.into(), end.into());
        // `cur` is the first address of `start..=end` not yet handled;
        // `None` means the range is used up.
        let mut cur = Some(start);
        while j < b.len() && b[j].1.into() < start {
            j += 1;
        }
        let mut k = j;
        while let Some(c) = cur {
            let Some(&(bs, be)) = b.get(k) else { break };
            let (bs, be): (u128, u128) = (bs.into(), be.into());
            if bs > end {
                break;
            }
            if bs > c {
                push(&mut out, c, bs - 1);
            }
            cur = if be >= end { None } else { Some(be.max(c) + 1) };
            k += 1;
        }
        if let Some(c) = cur {
            push(&mut out, c, end);
        }
    }
    out
}

fn push<T: Addr>(out: &mut Vec<(T, T)>, s: u128, e: u128) {
    // Both bounds come from values of type T, so the conversions succeed.
    if let (Ok(s), Ok(e)) = (T::try_from(s), T::try_from(e)) {
        out.push((s, e));
    }
}

/// Number of addresses in a normalized list, `None` if it exceeds `u128`
/// (only the whole IPv6 space does).
pub(crate) fn total<T: Addr>(ranges: &[(T, T)]) -> Option<u128> {
    ranges.iter().try_fold(0u128, |acc, &(s, e)| {
        (e.into() - s.into())
            .checked_add(1)
            .and_then(|n| acc.checked_add(n))
    })
}

/// A normalized range list with cumulative counts for indexed access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet<T> {
    ranges: Vec<(T, T)>,
    /// `cum[i]` = number of addresses in `ranges[..=i]`.
    cum: Vec<u64>,
}

impl<T: Addr> RangeSet<T> {
    /// Builds the set from a normalized list; `None` if it holds more than
    /// `u64::MAX` addresses.
    pub(crate) fn new(ranges: Vec<(T, T)>) -> Option<RangeSet<T>> {
        let mut cum = Vec::with_capacity(ranges.len());
        let mut acc: u64 = 0;
        for &(s, e) in &ranges {
            let n = u64::try_from(e.into() - s.into()).ok()?.checked_add(1)?;
            acc = acc.checked_add(n)?;
            cum.push(acc);
        }
        Some(RangeSet { ranges, cum })
    }

    pub(crate) fn len(&self) -> u64 {
        self.cum.last().copied().unwrap_or(0)
    }

    pub(crate) fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// The address at `index` in ascending order.
    pub(crate) fn get(&self, index: u64) -> Option<T> {
        let i = self.cum.partition_point(|&c| c <= index);
        let &(start, _) = self.ranges.get(i)?;
        let before = if i == 0 { 0 } else { self.cum[i - 1] };
        T::try_from(start.into() + u128::from(index - before)).ok()
    }

    pub(crate) fn contains(&self, addr: T) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e < addr);
        self.ranges.get(i).is_some_and(|&(s, _)| s <= addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_merges_overlaps_and_neighbours() {
        let r = normalize(vec![
            (10u32, 20),
            (1, 3),
            (4, 5),
            (15, 30),
            (40, 40),
            (7, 6),
        ]);
        assert_eq!(r, vec![(1, 5), (10, 30), (40, 40)]);
    }

    #[test]
    fn normalize_handles_top_of_space() {
        let r = normalize(vec![(u32::MAX - 1, u32::MAX), (u32::MAX, u32::MAX), (0, 0)]);
        assert_eq!(r, vec![(0, 0), (u32::MAX - 1, u32::MAX)]);
        let r = normalize(vec![(0u128, u128::MAX), (5, 9)]);
        assert_eq!(r, vec![(0, u128::MAX)]);
    }

    #[test]
    fn subtract_cuts_holes_and_edges() {
        let a = vec![(0u32, 100), (200, 300)];
        let b = vec![(0u32, 9), (50, 60), (95, 210), (300, 400)];
        assert_eq!(subtract(&a, &b), vec![(10, 49), (61, 94), (211, 299)]);
        assert_eq!(subtract(&a, &[]), a);
        assert_eq!(subtract(&a, &[(0, u32::MAX)]), vec![]);
        let full = vec![(0u128, u128::MAX)];
        assert_eq!(
            subtract(&full, &[(1, u128::MAX - 1)]),
            vec![(0, 0), (u128::MAX, u128::MAX)]
        );
    }

    #[test]
    fn subtract_with_one_exclude_spanning_many_ranges() {
        let a = vec![(1u32, 2), (4, 5), (7, 8), (10, 12)];
        assert_eq!(subtract(&a, &[(2, 11)]), vec![(1, 1), (12, 12)]);
    }

    #[test]
    fn totals_and_overflow() {
        assert_eq!(total(&[(0u32, u32::MAX)]), Some(1 << 32));
        assert_eq!(total(&[(0u128, u128::MAX)]), None);
        assert_eq!(total::<u32>(&[]), Some(0));
        assert!(RangeSet::new(vec![(0u128, u128::from(u64::MAX))]).is_none());
        let s = RangeSet::new(vec![(0u128, u128::from(u64::MAX) - 1)]).unwrap();
        assert_eq!(s.len(), u64::MAX);
        assert_eq!(s.get(u64::MAX - 1), Some(u128::from(u64::MAX) - 1));
        assert_eq!(s.get(u64::MAX), None);
    }

    #[test]
    fn get_and_contains() {
        let s = RangeSet::new(vec![(5u32, 7), (10, 10), (20, 21)]).unwrap();
        assert_eq!(s.len(), 6);
        let all: Vec<u32> = (0..7).filter_map(|i| s.get(i)).collect();
        assert_eq!(all, vec![5, 6, 7, 10, 20, 21]);
        assert!(s.contains(5) && s.contains(10) && s.contains(21));
        assert!(!s.contains(4) && !s.contains(8) && !s.contains(22));
        let empty = RangeSet::<u32>::new(vec![]).unwrap();
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.get(0), None);
        assert!(!empty.contains(0));
    }
}
