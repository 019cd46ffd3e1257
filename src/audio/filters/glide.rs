//! A linear parameter glide: when a gain-like setting is hot-swapped, move from the old value to
//! the new one over a few milliseconds instead of stepping, so the change does not click.

/// How many frames a change takes (10 ms at 48 kHz).
pub(super) const GLIDE_FRAMES: u32 = 480;

#[derive(Debug, Clone, Copy)]
pub(super) struct Glide {
    value: f32,
    target: f32,
    step: f32,
    left: u32,
}

impl Glide {
    pub(super) fn new(value: f32) -> Self {
        Glide {
            value,
            target: value,
            step: 0.0,
            left: 0,
        }
    }

    /// Start moving towards `target`.
    pub(super) fn set(&mut self, target: f32) {
        if target != self.target {
            self.target = target;
            self.left = GLIDE_FRAMES;
            self.step = (target - self.value) / GLIDE_FRAMES as f32;
        }
    }

    /// Jump to the target at once (after a seek there is nothing to be smooth against).
    pub(super) fn settle(&mut self) {
        self.value = self.target;
        self.left = 0;
    }

    /// True while the value is still moving.
    #[inline]
    pub(super) fn moving(&self) -> bool {
        self.left > 0
    }

    /// The current value (the target once settled).
    #[inline]
    pub(super) fn value(&self) -> f32 {
        self.value
    }

    /// Advance one frame and return the value for it.
    #[inline]
    pub(super) fn next(&mut self) -> f32 {
        if self.left > 0 {
            self.left -= 1;
            self.value = if self.left == 0 {
                self.target
            } else {
                self.value + self.step
            };
        }
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_the_target_exactly_after_the_glide() {
        let mut g = Glide::new(1.0);
        g.set(3.0);
        let first = g.next();
        assert!(first > 1.0 && first < 1.01);
        for _ in 1..GLIDE_FRAMES {
            g.next();
        }
        assert!(!g.moving());
        assert_eq!(g.value(), 3.0);
    }
}
