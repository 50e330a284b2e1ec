//! [`Rows`]: what a batch is made of, and its implementations for `Vec<T>` and (feature
//! `ndarray`) `ndarray` arrays along axis 0.

use alloc::vec::Vec;

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
}

impl<T> Rows for Vec<T> {
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
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

    use super::Rows;

    /// Rows along axis 0: `concat` is `ndarray::concatenate(Axis(0), ..)`, `split` slices
    /// axis 0. Arrays are compatible when their shapes agree past axis 0.
    #[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
    impl<A: Clone, D: RemoveAxis> Rows for Array<A, D> {
        #[inline]
        fn len(&self) -> usize {
            self.len_of(Axis(0))
        }

        fn compatible(&self, other: &Self) -> bool {
            self.shape().get(1..) == other.shape().get(1..)
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
