//! Where the commands' output goes: stdout and stderr, or, for a command run in process
//! ([`super::in_process`]), buffers the caller reads (the log joins the stderr one).
//!
//! The capture is per thread: an in-process command runs on a current-thread runtime, so
//! everything it spawns writes from the same thread, and tests running side by side on other
//! threads keep their own lines.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

thread_local! {
    static CAPTURE: RefCell<Option<Streams>> = const { RefCell::new(None) };
}

/// Where an in-process command's two streams go.
#[derive(Clone, Default)]
pub(crate) struct Streams {
    pub out: Captured,
    pub err: Captured,
}

/// Lines captured from a command run in process: its own lines and its log.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
    }
}

impl Streams {
    /// Sends this thread's command output here until the guard drops.
    pub fn install(&self) -> CaptureGuard {
        let previous = CAPTURE.with(|c| c.replace(Some(self.clone())));
        CaptureGuard { previous }
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Restores the previous destination of this thread's command lines when dropped.
pub(crate) struct CaptureGuard {
    previous: Option<Streams>,
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURE.with(|c| *c.borrow_mut() = previous);
    }
}

/// One line for the operator, on stderr (or the in-process capture).
pub(crate) fn line(text: std::fmt::Arguments<'_>) {
    match CAPTURE.with(|c| c.borrow().clone()) {
        Some(streams) => streams.err.push(format!("{text}\n").as_bytes()),
        None => eprintln!("{text}"),
    }
}

/// One line of a command's result, on stdout (or the in-process capture).
pub(crate) fn out_line(text: std::fmt::Arguments<'_>) {
    match CAPTURE.with(|c| c.borrow().clone()) {
        Some(streams) => streams.out.push(format!("{text}\n").as_bytes()),
        None => println!("{text}"),
    }
}

/// `eprintln!` for the commands: through [`line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cmd::console::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// `println!` for the commands: through [`out_line`].
macro_rules! show {
    () => {
        $crate::cmd::console::out_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cmd::console::out_line(format_args!($($arg)*))
    };
}
pub(crate) use show;
