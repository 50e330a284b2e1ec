//! [`Rows`]: what a batch is made of, and its implementations for `Vec<T>` and (feature
//! `ndarray`) `ndarray` arrays along axis 0.

use alloc::vec::Vec;
use core::fmt;

/// A sequence of rows that a [`Batcher`](super::Batcher) concatenates and splits.
///
/// A call hands the batcher a value of the input type; the batcher concatenates the values of
/// every call in a batch, in arrival order, into one value for the batch function, and splits
/// the function's result (a value of the output type) back into one piece per call, by row
/// ranges. It is implemented for `Vec<T>` (Python dike's `argument_type="list"`: several input
/// columns are a `Vec` of tuples) and, with the `ndarray` feature, for
/// `ndarray::Array<A, D>` along axis 0 (the original's `"numpy"` mode).
///
/// # Implementing
///
/// - [`len`](Rows::len) MUST return the number of rows, and MUST agree with what
///   [`concat`](Rows::concat) and [`split`](Rows::split) do.
/// - [`compatible`](Rows::compatible) and `len` are called with the batcher's lock held: they
///   MUST be cheap and MUST NOT touch the batcher. `concat` and `split` are called without it.
/// - [`concat`](Rows::concat) is given at least one part, each of at least one row, pairwise
///   [`compatible`](Rows::compatible); it MUST return their rows in order, and MUST NOT panic on
///   such input.
/// - [`split`](Rows::split) is given lengths that sum to `len()`; it MUST return one piece per
///   length, in order, each with that many rows.
/// - [`from_row`](Rows::from_row) MUST return a value of one row; [`into_row`](Rows::into_row)
///   MUST hand back exactly the one row of a one-row value.
/// - The part-level methods ([`compatible_parts`](Rows::compatible_parts),
///   [`concat_parts`](Rows::concat_parts), [`split_parts`](Rows::split_parts)) are what the
///   batcher calls; their default implementations go through the methods above, so a type
///   only overrides them to save work (`Vec<T>` does: a single-row call moves its row straight
///   into the batch and out of the result, with no allocation of its own). A type whose
///   `compatible` can say no MUST override `compatible_parts` too, to check single rows.
///   `compatible_parts` is called with the batcher's lock held, like `compatible`.
///
/// # Examples
///
/// ```
/// use dike::batch::Rows;
///
/// let batch = <Vec<i32> as Rows>::concat(vec![vec![1, 2], vec![3]]);
/// assert_eq!(batch, [1, 2, 3]);
/// assert_eq!(Rows::len(&batch), 3);
/// assert_eq!(Rows::split(batch, &[1, 2]), [vec![1], vec![2, 3]]);
/// ```
pub trait Rows: Sized {
    /// One row: what [`Batcher::call_one`](super::Batcher::call_one) takes (or, for the
    /// batch function's output type, resolves to). `T` for `Vec<T>`; for an array, the array
    /// one dimension down.
    type Row;

    /// The number of rows (the length along the first axis).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// assert_eq!(Rows::len(&vec![(1, 'a'), (2, 'b')]), 2);
    /// ```
    fn len(&self) -> usize;

    /// Whether there are no rows (a call with none is rejected with
    /// [`BatchError::Empty`](super::BatchError::Empty)).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// assert!(Rows::is_empty(&Vec::<u8>::new()));
    /// ```
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` may join a batch that holds `self` (for arrays: the same shape past
    /// the first axis). A call whose rows are not compatible with the rows already waiting is
    /// rejected with [`BatchError::Incompatible`](super::BatchError::Incompatible).
    ///
    /// The default says yes.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// assert!(vec![1, 2].compatible(&vec![3]));
    /// ```
    fn compatible(&self, other: &Self) -> bool {
        let _ = other;
        true
    }

    /// The rows of `parts`, in order, as one value.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// let batch = <Vec<char> as Rows>::concat(vec![vec!['a'], vec!['b', 'c']]);
    /// assert_eq!(batch, ['a', 'b', 'c']);
    /// ```
    fn concat(parts: Vec<Self>) -> Self;

    /// Consecutive pieces of `lens[0]`, `lens[1]`, ... rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// let pieces = Rows::split(vec![10, 11, 12, 13, 14], &[1, 3, 1]);
    /// assert_eq!(pieces, [vec![10], vec![11, 12, 13], vec![14]]);
    /// ```
    fn split(self, lens: &[usize]) -> Vec<Self>;

    /// A value of the one row `row`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// assert_eq!(<Vec<u8> as Rows>::from_row(7), [7]);
    /// ```
    fn from_row(row: Self::Row) -> Self;

    /// The one row of a one-row value; any other value is handed back as `Err`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Rows;
    ///
    /// assert_eq!(vec![7].into_row(), Ok(7));
    /// assert_eq!(vec![7, 8].into_row(), Err(vec![7, 8]));
    /// ```
    fn into_row(self) -> Result<Self::Row, Self>;

    /// Whether two calls' parts may share a batch: [`compatible`](Rows::compatible) for two
    /// multi-row parts, and (by default) yes as soon as one of them is a single row. Override
    /// it when `compatible` can say no.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::{Part, Rows};
    ///
    /// assert!(Vec::compatible_parts(&Part::Row(1), &Part::Rows(vec![2, 3])));
    /// ```
    fn compatible_parts(a: &Part<Self>, b: &Part<Self>) -> bool {
        match (a, b) {
            (Part::Rows(a), Part::Rows(b)) => a.compatible(b),
            _ => true,
        }
    }

    /// The rows of `parts` (`rows` of them in all), in order, as one value. By default,
    /// [`from_row`](Rows::from_row) on each single row, then [`concat`](Rows::concat).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::{Part, Rows};
    ///
    /// let parts = [Part::Row(1), Part::Rows(vec![2, 3]), Part::Row(4)];
    /// assert_eq!(Vec::concat_parts(parts, 4), [1, 2, 3, 4]);
    /// ```
    fn concat_parts<P: IntoIterator<Item = Part<Self>>>(parts: P, rows: usize) -> Self {
        let _ = rows;
        Self::concat(parts.into_iter().map(Part::into_rows).collect())
    }

    /// Appends to `out` consecutive pieces of `lens[0]`, `lens[1]`, ... rows (`lens` sums to
    /// `len()`), one per length, in order. A piece may be a [`Part::Row`] only where its
    /// length is 1. By default, [`split`](Rows::split), every piece a [`Part::Rows`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::{Part, Rows};
    ///
    /// let mut out = Vec::new();
    /// vec![10, 11, 12].split_parts(&[1, 2], &mut out);
    /// assert_eq!(out, [Part::Row(10), Part::Rows(vec![11, 12])]);
    /// ```
    fn split_parts(self, lens: &[usize], out: &mut Vec<Part<Self>>) {
        out.extend(self.split(lens).into_iter().map(Part::Rows));
    }
}

/// One call's share of a batch: a single row (from
/// [`call_one`](super::Batcher::call_one)) or a value of several rows (from
/// [`call`](super::Batcher::call)). See [`Rows::concat_parts`] and [`Rows::split_parts`].
///
/// # Examples
///
/// ```
/// use dike::batch::Part;
///
/// let part: Part<Vec<u8>> = Part::Row(3);
/// assert_eq!(part.len(), 1);
/// assert_eq!(part.into_rows(), [3]);
/// ```
pub enum Part<R: Rows> {
    /// One row.
    Row(R::Row),
    /// Any number of rows.
    Rows(R),
}

impl<R: Rows> Part<R> {
    /// The number of rows: 1 for a [`Part::Row`].
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Part;
    ///
    /// assert_eq!(Part::Rows(vec![1, 2]).len(), 2);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Self::Row(_) => 1,
            Self::Rows(rows) => rows.len(),
        }
    }

    /// Whether the part has no rows (only a `Part::Rows` can be empty).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Part;
    ///
    /// assert!(Part::Rows(Vec::<u8>::new()).is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part as a value of rows ([`Rows::from_row`] for a single row).
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Part;
    ///
    /// assert_eq!(Part::<Vec<u8>>::Row(1).into_rows(), [1]);
    /// ```
    #[inline]
    pub fn into_rows(self) -> R {
        match self {
            Self::Row(row) => R::from_row(row),
            Self::Rows(rows) => rows,
        }
    }

    /// The part's one row, or the part back as a value of rows when it has not exactly one.
    ///
    /// # Examples
    ///
    /// ```
    /// use dike::batch::Part;
    ///
    /// assert_eq!(Part::Rows(vec![5]).into_row(), Ok(5));
    /// ```
    #[inline]
    pub fn into_row(self) -> Result<R::Row, R> {
        match self {
            Self::Row(row) => Ok(row),
            Self::Rows(rows) => rows.into_row(),
        }
    }
}

impl<R: Rows + fmt::Debug> fmt::Debug for Part<R>
where
    R::Row: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Row(row) => f.debug_tuple("Row").field(row).finish(),
            Self::Rows(rows) => f.debug_tuple("Rows").field(rows).finish(),
        }
    }
}

impl<R: Rows + Clone> Clone for Part<R>
where
    R::Row: Clone,
{
    fn clone(&self) -> Self {
        match self {
            Self::Row(row) => Self::Row(row.clone()),
            Self::Rows(rows) => Self::Rows(rows.clone()),
        }
    }
}

impl<R: Rows + PartialEq> PartialEq for Part<R>
where
    R::Row: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Row(a), Self::Row(b)) => a == b,
            (Self::Rows(a), Self::Rows(b)) => a == b,
            _ => false,
        }
    }
}

/// Single rows move in and out of the batch as they are: a `call_one` allocates nothing of its
/// own.
impl<T> Rows for Vec<T> {
    type Row = T;

    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }

    #[inline]
    fn from_row(row: T) -> Self {
        alloc::vec![row]
    }

    #[inline]
    fn into_row(mut self) -> Result<T, Self> {
        if self.len() == 1 {
            if let Some(row) = self.pop() {
                return Ok(row);
            }
        }
        Err(self)
    }

    fn concat_parts<P: IntoIterator<Item = Part<Self>>>(parts: P, rows: usize) -> Self {
        let mut parts = parts.into_iter();
        let mut all = match parts.next() {
            None => return Vec::new(),
            // One call of several rows: its own buffer is the batch.
            Some(Part::Rows(first)) if first.len() >= rows => return first,
            Some(Part::Rows(mut first)) => {
                first.reserve(rows - first.len());
                first
            }
            Some(Part::Row(row)) => {
                let mut all = Vec::with_capacity(rows);
                all.push(row);
                all
            }
        };
        for part in parts {
            match part {
                Part::Row(row) => all.push(row),
                Part::Rows(mut rows) => all.append(&mut rows),
            }
        }
        all
    }

    fn split_parts(self, lens: &[usize], out: &mut Vec<Part<Self>>) {
        if let [n] = lens {
            if *n != 1 {
                out.push(Part::Rows(self));
                return;
            }
        }
        out.reserve(lens.len());
        let mut rows = self.into_iter();
        for &n in lens {
            if n == 1 {
                // `lens` sums to `len()`: there is a row for every length.
                if let Some(row) = rows.next() {
                    out.push(Part::Row(row));
                }
            } else {
                out.push(Part::Rows(rows.by_ref().take(n).collect()));
            }
        }
    }

    fn concat(mut parts: Vec<Self>) -> Self {
        if parts.len() == 1 {
            return parts.pop().unwrap_or_default();
        }
        let total = parts.iter().map(Vec::len).sum();
        let mut all = Vec::with_capacity(total);
        for part in parts {
            all.extend(part);
        }
        all
    }

    fn split(self, lens: &[usize]) -> Vec<Self> {
        if let [_] = lens {
            return alloc::vec![self];
        }
        let mut rows = self.into_iter();
        lens.iter()
            .map(|&n| rows.by_ref().take(n).collect())
            .collect()
    }
}

#[cfg(feature = "ndarray")]
mod array {
    use alloc::vec::Vec;

    use ndarray::{Array, ArrayView, Axis, RemoveAxis, Slice};

    use super::{Part, Rows};

    /// Rows along axis 0: `concat` is `ndarray::concatenate(Axis(0), ..)`, `split` slices
    /// axis 0. Arrays are compatible when their shapes agree past axis 0.
    #[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
    impl<A: Clone, D: RemoveAxis> Rows for Array<A, D> {
        type Row = Array<A, D::Smaller>;

        #[inline]
        fn len(&self) -> usize {
            self.len_of(Axis(0))
        }

        fn compatible(&self, other: &Self) -> bool {
            self.shape().get(1..) == other.shape().get(1..)
        }

        fn from_row(row: Self::Row) -> Self {
            row.insert_axis(Axis(0))
                .into_dimensionality::<D>()
                .expect("a row with an axis inserted has the array's dimension")
        }

        fn into_row(self) -> Result<Self::Row, Self> {
            if self.len_of(Axis(0)) == 1 {
                Ok(self.index_axis_move(Axis(0), 0))
            } else {
                Err(self)
            }
        }

        fn compatible_parts(a: &Part<Self>, b: &Part<Self>) -> bool {
            fn row_shape<A: Clone, D: RemoveAxis>(part: &Part<Array<A, D>>) -> &[usize] {
                match part {
                    Part::Row(row) => row.shape(),
                    Part::Rows(rows) => rows.shape().get(1..).unwrap_or(&[]),
                }
            }
            row_shape(a) == row_shape(b)
        }

        fn concat(mut parts: Vec<Self>) -> Self {
            if parts.len() == 1 {
                if let Some(one) = parts.pop() {
                    return one;
                }
            }
            let views: Vec<ArrayView<'_, A, D>> = parts.iter().map(Array::view).collect();
            ndarray::concatenate(Axis(0), &views)
                .expect("parts were checked compatible when they joined the batch")
        }

        fn split(self, lens: &[usize]) -> Vec<Self> {
            if let [_] = lens {
                return alloc::vec![self];
            }
            let mut start = 0;
            lens.iter()
                .map(|&n| {
                    let piece = self
                        .slice_axis(Axis(0), Slice::from(start..start + n))
                        .to_owned();
                    start += n;
                    piece
                })
                .collect()
        }
    }
}
