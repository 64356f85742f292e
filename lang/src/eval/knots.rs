//! Breaking the reference cycles of recursive scopes.
//!
//! Values are reference counted, and a recursive scope ties a knot: the frame
//! of a `let` or `rec` set holds thunks whose environment is that frame (and
//! the thunks of its `inherit (e)` names), and the frame of a call holds the
//! thunks of its `? default`s, evaluated in the same frame. Such a cycle never
//! reaches a count of zero on its own. Forcing a knot does not always undo
//! it: in `let x = { self = x; }; in x` the frame is freed once `x` is
//! evaluated, but `x`'s value refers to `x` itself.
//!
//! Every other edge between values is fixed when the value is built, so a
//! cycle can only close through one of these knot thunks. The evaluator
//! therefore remembers each of them (weakly) here, and when it is dropped it
//! empties every knot still alive, which frees whatever cycle it was part of.
//! A value kept after its evaluator is dropped can no longer be forced
//! through such a thunk: forcing it fails (`E0219`) instead of looking at
//! freed state.
//!
//! Knots that die normally leave a dead weak reference behind; the list drops
//! those whenever it has doubled since the last sweep, so it stays within
//! twice the number of live knots.

use crate::eval::value::{Thunk, ThunkState};
use std::cell::{Cell, RefCell};
use std::rc::Weak;

/// Below this many entries the list is not swept.
const MIN_SWEEP: usize = 1024;

/// The knot thunks of one evaluator.
pub(crate) struct Knots {
    thunks: RefCell<Vec<Weak<RefCell<ThunkState>>>>,
    /// Sweep dead entries when the list reaches this length.
    sweep_at: Cell<usize>,
}

impl Knots {
    pub fn new() -> Self {
        Knots {
            thunks: RefCell::new(Vec::new()),
            sweep_at: Cell::new(MIN_SWEEP),
        }
    }

    /// Remembers a thunk that may close a cycle.
    pub fn register(&self, t: &Thunk) {
        let mut thunks = self.thunks.borrow_mut();
        if thunks.len() >= self.sweep_at.get() {
            thunks.retain(|w| w.strong_count() > 0);
            self.sweep_at.set((thunks.len() * 2).max(MIN_SWEEP));
        }
        thunks.push(t.downgrade());
    }

    /// Empties every knot thunk still alive, which breaks every cycle
    /// through it.
    pub fn clear(&self) {
        let thunks = std::mem::take(&mut *self.thunks.borrow_mut());
        for w in thunks {
            let Some(t) = w.upgrade() else { continue };
            // Move the state out before dropping it: dropping may release
            // other knots, which must not find this one borrowed.
            let state = match t.try_borrow_mut() {
                Ok(mut s) => std::mem::replace(&mut *s, ThunkState::Uninit),
                Err(_) => continue,
            };
            drop(state);
        }
    }
}
