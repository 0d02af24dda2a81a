//! The byte arithmetic every split shares: how many pieces, from a start, fit one part.
//!
//! A part's body is its first piece as it opens a part, each further piece as it follows the
//! one before, and what closes the part after its last piece. Each is rendered once, so its
//! size is known; [`longest_run`] adds sizes up, one piece at a time, and never renders.
//! Loss messages ([`super::pieces`]: a group heading opens a part and each new staff member,
//! a group's end closes it) and reports ([`crate::report::compose`]: lines joined by line
//! ends) are cut by this one function, so a part is as full as its limit allows in both.

/// Pieces whose sizes in a part are known.
pub(crate) trait Measured {
    /// How many pieces there are.
    fn count(&self) -> usize;
    /// Bytes piece `i` takes when it opens a part.
    fn opening(&self, i: usize) -> usize;
    /// Bytes piece `i` takes right after piece `i - 1`, in the same part.
    fn following(&self, i: usize) -> usize;
    /// Bytes that close a part whose last piece is `i`.
    fn closing(&self, i: usize) -> usize;
}

/// The most pieces from `start` whose part body fits in `room` bytes; 0 if not even one.
pub(crate) fn longest_run(pieces: &impl Measured, start: usize, room: usize) -> usize {
    let count = pieces.count();
    if start >= count {
        return 0;
    }
    let mut body = pieces.opening(start);
    if body + pieces.closing(start) > room {
        return 0;
    }
    let mut len = 1;
    while start + len < count {
        let longer = body + pieces.following(start + len);
        if longer + pieces.closing(start + len) > room {
            break;
        }
        body = longer;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines joined by `\n`, a part closed by a 3-byte end.
    struct Lines(Vec<usize>);

    impl Measured for Lines {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn opening(&self, i: usize) -> usize {
            self.0[i]
        }
        fn following(&self, i: usize) -> usize {
            1 + self.0[i]
        }
        fn closing(&self, _: usize) -> usize {
            3
        }
    }

    #[test]
    fn a_run_is_as_long_as_its_exact_size_allows() {
        let lines = Lines(vec![10, 10, 10, 10]);
        // 10 + 3 = 13; 10 + 11 + 3 = 24; 10 + 11 + 11 + 3 = 35.
        assert_eq!(longest_run(&lines, 0, 12), 0);
        assert_eq!(longest_run(&lines, 0, 13), 1);
        assert_eq!(longest_run(&lines, 0, 34), 2);
        assert_eq!(longest_run(&lines, 0, 35), 3);
        assert_eq!(longest_run(&lines, 2, 1000), 2, "never past the last piece");
        assert_eq!(longest_run(&lines, 4, 1000), 0, "nothing left");
    }
}
