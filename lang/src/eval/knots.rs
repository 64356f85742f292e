//! Breaking the reference cycles of recursive scopes.
//!
//! Values are reference counted, and a recursive scope ties a knot: the frame
//! of a `let` or `rec` set holds thunks whose environment is that frame, and
//! the frame of a call holds the thunks of its `? default`s, evaluated in the
//! same frame. Such a cycle never reaches a count of zero on its own.
//!
//! Every other edge between values is fixed when the value is built, so a
//! cycle can only close through one of these knot thunks. The evaluator
//! therefore remembers them (weakly) here — a `let` or `rec` frame as a whole,
//! with the list of its slots that are knots — and when it is
//! dropped it empties every knot still alive, which frees the whole scope. A
//! value kept after its evaluator is dropped can no longer be forced through
//! such a thunk: forcing it fails (`E0219`) instead of looking at freed
//! state.
//!
//! Knots that die normally (no cycle formed, or it was undone by forcing)
//! leave a dead weak reference behind; the list drops those whenever it has
//! doubled since the last sweep, so it stays within twice the number of live
//! knots.

use crate::eval::ir::KnotSlots;
use crate::eval::value::{Env, Thunk, ThunkState, Value};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// Below this many entries the list is not swept.
const MIN_SWEEP: usize = 1024;

enum Knot {
    /// A `let` or `rec` frame and its knot slots.
    Frame(Weak<Env>, KnotSlots),
    /// One thunk (a `? default`).
    Thunk(Weak<RefCell<ThunkState>>),
}

impl Knot {
    fn is_alive(&self) -> bool {
        match self {
            Knot::Frame(w, _) => w.strong_count() > 0,
            Knot::Thunk(w) => w.strong_count() > 0,
        }
    }
}

/// The knots of one evaluator.
pub(crate) struct Knots {
    knots: RefCell<Vec<Knot>>,
    /// Sweep dead entries when the list reaches this length.
    sweep_at: Cell<usize>,
}

impl Knots {
    pub fn new() -> Self {
        Knots {
            knots: RefCell::new(Vec::new()),
            sweep_at: Cell::new(MIN_SWEEP),
        }
    }

    fn push(&self, k: Knot) {
        let mut knots = self.knots.borrow_mut();
        if knots.len() >= self.sweep_at.get() {
            knots.retain(Knot::is_alive);
            self.sweep_at.set((knots.len() * 2).max(MIN_SWEEP));
        }
        knots.push(k);
    }

    /// Remembers a `let` or `rec` frame whose slots `knots` hold its own
    /// thunks.
    pub fn register_frame(&self, frame: &Rc<Env>, knots: &KnotSlots) {
        if !knots.is_empty() {
            self.push(Knot::Frame(Rc::downgrade(frame), knots.clone()));
        }
    }

    /// Remembers a thunk that may close a cycle.
    pub fn register_thunk(&self, t: &Thunk) {
        self.push(Knot::Thunk(t.downgrade()));
    }

    /// Empties every knot still alive, which breaks every cycle through it.
    pub fn clear(&self) {
        let knots = std::mem::take(&mut *self.knots.borrow_mut());
        for k in knots {
            match k {
                Knot::Thunk(w) => {
                    if let Some(t) = w.upgrade() {
                        empty(&t);
                    }
                }
                Knot::Frame(w, slots) => {
                    let Some(frame) = w.upgrade() else { continue };
                    for i in slots.iter() {
                        if let Value::Thunk(t) = frame.lookup(0, i) {
                            empty(&t.0);
                        }
                    }
                }
            }
        }
    }
}

/// Replaces a thunk's state with nothing. The state is moved out before it
/// is dropped: dropping it may release other knots, which must not find this
/// one borrowed.
fn empty(t: &RefCell<ThunkState>) {
    let state = match t.try_borrow_mut() {
        Ok(mut s) => std::mem::replace(&mut *s, ThunkState::Uninit),
        Err(_) => return,
    };
    drop(state);
}
