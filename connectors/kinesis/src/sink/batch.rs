//! Splitting records into `PutRecords` requests.

use std::ops::Range;

/// Splits records of the given sizes (data plus partition key, each at
/// most `max_bytes`) into consecutive runs of at most `max_records`
/// records and `max_bytes` bytes, in order.
pub(crate) fn plan(sizes: &[usize], max_records: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let max_records = max_records.max(1);
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start >= max_records || (i > start && bytes + size > max_bytes);
        if full {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn splits_by_record_count() {
        let sizes = vec![10; 1201];
        let b = plan(&sizes, 500, 5 * MIB);
        assert_eq!(b, vec![0..500, 500..1000, 1000..1201]);
    }

    #[test]
    fn splits_by_bytes() {
        // Eleven records of 1 MiB: five per 5 MiB request.
        let sizes = vec![MIB; 11];
        let b = plan(&sizes, 500, 5 * MIB);
        assert_eq!(b, vec![0..5, 5..10, 10..11]);
    }

    #[test]
    fn a_request_never_exceeds_either_limit() {
        let sizes: Vec<usize> = (0..3000).map(|i| (i * 7919) % (MIB / 3) + 1).collect();
        let batches = plan(&sizes, 500, 5 * MIB);
        let mut next = 0;
        for r in &batches {
            assert_eq!(r.start, next, "batches are consecutive");
            assert!(!r.is_empty() && r.len() <= 500);
            assert!(sizes[r.clone()].iter().sum::<usize>() <= 5 * MIB);
            next = r.end;
        }
        assert_eq!(next, sizes.len());
    }

    #[test]
    fn exact_fits_and_empty_input() {
        assert_eq!(
            plan(&[MIB, MIB, 3 * MIB, 1], 500, 5 * MIB),
            vec![0..3, 3..4]
        );
        assert_eq!(plan(&[1, 2, 3], 3, 6), vec![0..3]);
        assert!(plan(&[], 500, 5 * MIB).is_empty());
    }
}
