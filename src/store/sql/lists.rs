//! Lists of ids and rows as few distinct statement texts: `IdList` for `IN (…)`, `values` and
//! `pow2_runs` for multi-row `VALUES`.

use super::Param;

/// Most ids one `IdList` holds; callers with more split them.
pub const ID_LIST_MAX: usize = 512;

/// `(?1, ?2), (?3, ?4), …` for `rows` rows of `types.len()` parameters, for `UPDATE … FROM
/// (VALUES …) AS v` (columns `v.column1`, …, on both backends). The first row casts to
/// `types`; PostgreSQL infers the other rows from it.
pub fn values(rows: usize, types: &[&str]) -> String {
    let width = types.len();
    (0..rows)
        .map(|i| {
            let cols: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(c, ty)| match i {
                    0 => format!("CAST(?{} AS {ty})", c + 1),
                    _ => format!("?{}", i * width + c + 1),
                })
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `items` in runs whose lengths are powers of two, each at most `max` (itself a power of two),
/// longest first: a multi-row `VALUES` list per run makes one of a few statement texts (as
/// `IdList` does for `IN`), where one run per length would prepare a text for every length.
pub fn pow2_runs<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= max {
            max
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (run, tail) = rest.split_at(len);
        rest = tail;
        Some(run)
    })
}

/// An `IN (…)` list of integer ids as placeholders: `marks` is `?F, ?F+1, …` from the first
/// placeholder number `F`, and `params` the ids to bind, padded with the last id up to a power
/// of two (a repeated id in `IN` changes nothing). So a list makes one of a few statement
/// texts, each prepared once per connection and cached; ids written into the text as literals
/// made a statement per call, which both engines prepared anew, and which deadpool's statement
/// cache (it has no bound) and the PostgreSQL server kept for the connection's life.
pub struct IdList {
    pub marks: String,
    ids: Vec<i64>,
}

impl IdList {
    /// `ids` must not be empty and holds at most `ID_LIST_MAX`.
    pub fn new(first: usize, ids: &[i64]) -> IdList {
        debug_assert!(!ids.is_empty() && ids.len() <= ID_LIST_MAX);
        let len = ids.len().max(1).next_power_of_two();
        let mut padded = ids.to_vec();
        padded.resize(len, ids.last().copied().unwrap_or(0));
        let marks = (first..first + len)
            .map(|n| format!("?{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        IdList { marks, ids: padded }
    }

    /// How many placeholders `marks` holds (the ids, padded).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn params(&self) -> impl Iterator<Item = &dyn Param> {
        self.ids.iter().map(|id| id as &dyn Param)
    }
}
