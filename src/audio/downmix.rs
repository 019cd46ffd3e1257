//! Channel-count conversion to stereo: mono is copied to both sides, stereo passes through, and
//! any other layout is folded down with the usual coefficients (centre and surrounds at −3 dB,
//! LFE dropped), scaled so that a full-scale signal on every channel cannot clip.

use symphonia::core::audio::conv::FromSample;
use symphonia::core::audio::sample::Sample;
use symphonia::core::audio::{Audio, AudioBuffer, ChannelLabel, Channels, Position};

/// −3 dB.
const HALF_POWER: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// How one decoded layout becomes interleaved stereo.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Downmix {
    Mono,
    Stereo,
    /// Per input channel (in the decoder's plane order): (gain to left, gain to right).
    Matrix(Vec<(f32, f32)>),
}

impl Downmix {
    /// The conversion for a decoded layout; `None` when it has no channels.
    pub(crate) fn for_channels(channels: &Channels) -> Option<Downmix> {
        let labels: Vec<ChannelLabel> = match channels {
            Channels::Positioned(mask) => {
                let mut v = Vec::new();
                for bit in 0..64 {
                    let p = Position::from_bits_retain(1u64 << bit);
                    if mask.contains(p) && !p.is_empty() {
                        v.push(ChannelLabel::Positioned(p));
                    }
                }
                v
            }
            Channels::Discrete(n) => (0..*n).map(ChannelLabel::Discrete).collect(),
            Channels::Custom(labels) => labels.to_vec(),
            other => (0..other.count() as u16)
                .map(ChannelLabel::Discrete)
                .collect(),
        };
        Downmix::for_labels(&labels)
    }

    fn for_labels(labels: &[ChannelLabel]) -> Option<Downmix> {
        match labels {
            [] => return None,
            [_] => return Some(Downmix::Mono),
            [
                ChannelLabel::Positioned(Position::FRONT_LEFT),
                ChannelLabel::Positioned(Position::FRONT_RIGHT),
            ]
            | [ChannelLabel::Discrete(_), ChannelLabel::Discrete(_)] => {
                return Some(Downmix::Stereo);
            }
            _ => {}
        }
        let positioned = labels
            .iter()
            .all(|l| matches!(l, ChannelLabel::Positioned(_)));
        let mut gains: Vec<(f32, f32)> = if positioned {
            labels
                .iter()
                .map(|l| match l {
                    ChannelLabel::Positioned(p) => position_gains(*p),
                    _ => (0.0, 0.0),
                })
                .collect()
        } else {
            Vec::new()
        };
        let silent = gains.iter().all(|&(l, r)| l == 0.0 && r == 0.0);
        if !positioned || silent {
            // No usable positions: even channels to the left, odd ones to the right.
            gains = (0..labels.len())
                .map(|i| if i % 2 == 0 { (1.0, 0.0) } else { (0.0, 1.0) })
                .collect();
        }
        let left: f32 = gains.iter().map(|g| g.0).sum();
        let right: f32 = gains.iter().map(|g| g.1).sum();
        let norm = left.max(right);
        if norm > 0.0 {
            for g in &mut gains {
                g.0 /= norm;
                g.1 /= norm;
            }
        }
        Some(Downmix::Matrix(gains))
    }

    /// Input channels this conversion expects.
    pub(crate) fn channels(&self) -> usize {
        match self {
            Downmix::Mono => 1,
            Downmix::Stereo => 2,
            Downmix::Matrix(g) => g.len(),
        }
    }

    /// Writes frames `skip..` of `buf` as interleaved stereo into `out` (which must hold
    /// exactly `2 × (frames − skip)` samples).
    pub(crate) fn mix<S>(&self, buf: &AudioBuffer<S>, skip: usize, out: &mut [f32])
    where
        S: Sample,
        f32: FromSample<S>,
    {
        let frames = buf.frames().saturating_sub(skip);
        debug_assert_eq!(out.len(), frames * 2);
        if buf.num_planes() < self.channels() {
            out.fill(0.0);
            return;
        }
        let conv = |s: S| -> f32 { <f32 as FromSample<S>>::from_sample(s) };
        match self {
            Downmix::Mono => {
                let m = &plane(buf, 0)[skip..];
                for (o, &s) in out.chunks_exact_mut(2).zip(m) {
                    let v = conv(s);
                    o[0] = v;
                    o[1] = v;
                }
            }
            Downmix::Stereo => {
                let l = &plane(buf, 0)[skip..];
                let r = &plane(buf, 1)[skip..];
                for ((o, &a), &b) in out.chunks_exact_mut(2).zip(l).zip(r) {
                    o[0] = conv(a);
                    o[1] = conv(b);
                }
            }
            Downmix::Matrix(gains) => {
                out.fill(0.0);
                for (ch, &(gl, gr)) in gains.iter().enumerate() {
                    if gl == 0.0 && gr == 0.0 {
                        continue;
                    }
                    let p = &plane(buf, ch)[skip..];
                    for (o, &s) in out.chunks_exact_mut(2).zip(p) {
                        let v = conv(s);
                        o[0] += gl * v;
                        o[1] += gr * v;
                    }
                }
            }
        }
    }
}

fn plane<S: Sample>(buf: &AudioBuffer<S>, idx: usize) -> &[S] {
    buf.plane(idx).unwrap_or(&[])
}

/// Stereo gains of one speaker position.
fn position_gains(p: Position) -> (f32, f32) {
    const LEFT: Position = Position::FRONT_LEFT
        .union(Position::FRONT_LEFT_CENTER)
        .union(Position::FRONT_LEFT_WIDE)
        .union(Position::TOP_FRONT_LEFT)
        .union(Position::BOTTOM_FRONT_LEFT);
    const RIGHT: Position = Position::FRONT_RIGHT
        .union(Position::FRONT_RIGHT_CENTER)
        .union(Position::FRONT_RIGHT_WIDE)
        .union(Position::TOP_FRONT_RIGHT)
        .union(Position::BOTTOM_FRONT_RIGHT);
    const CENTRE: Position = Position::FRONT_CENTER
        .union(Position::TOP_CENTER)
        .union(Position::TOP_FRONT_CENTER)
        .union(Position::BOTTOM_FRONT_CENTER);
    const SURROUND_LEFT: Position = Position::REAR_LEFT
        .union(Position::SIDE_LEFT)
        .union(Position::TOP_REAR_LEFT)
        .union(Position::TOP_SIDE_LEFT);
    const SURROUND_RIGHT: Position = Position::REAR_RIGHT
        .union(Position::SIDE_RIGHT)
        .union(Position::TOP_REAR_RIGHT)
        .union(Position::TOP_SIDE_RIGHT);
    const BACK_CENTRE: Position = Position::REAR_CENTER.union(Position::TOP_REAR_CENTER);

    if LEFT.contains(p) {
        (1.0, 0.0)
    } else if RIGHT.contains(p) {
        (0.0, 1.0)
    } else if CENTRE.contains(p) {
        (HALF_POWER, HALF_POWER)
    } else if SURROUND_LEFT.contains(p) {
        (HALF_POWER, 0.0)
    } else if SURROUND_RIGHT.contains(p) {
        (0.0, HALF_POWER)
    } else if BACK_CENTRE.contains(p) {
        (0.5, 0.5)
    } else {
        // LFE and anything unknown.
        (0.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia::core::audio::{AudioMut, AudioSpec, layouts};

    fn buffer(channels: Channels, planes: &[&[f32]]) -> AudioBuffer<f32> {
        let frames = planes[0].len();
        let mut b = AudioBuffer::<f32>::new(AudioSpec::new(48000, channels), frames);
        b.render_silence(Some(frames));
        for (i, p) in planes.iter().enumerate() {
            b.plane_mut(i).unwrap().copy_from_slice(p);
        }
        b
    }

    #[test]
    fn mono_goes_to_both_sides_and_stereo_passes() {
        let m = Downmix::for_channels(&layouts::CHANNEL_LAYOUT_MONO).unwrap();
        assert_eq!(m, Downmix::Mono);
        let b = buffer(layouts::CHANNEL_LAYOUT_MONO, &[&[0.25, -0.5]]);
        let mut out = [0.0; 4];
        m.mix(&b, 0, &mut out);
        assert_eq!(out, [0.25, 0.25, -0.5, -0.5]);

        let s = Downmix::for_channels(&layouts::CHANNEL_LAYOUT_STEREO).unwrap();
        assert_eq!(s, Downmix::Stereo);
        let b = buffer(layouts::CHANNEL_LAYOUT_STEREO, &[&[0.1, 0.2], &[0.3, 0.4]]);
        let mut out = [0.0; 2];
        s.mix(&b, 1, &mut out);
        assert_eq!(out, [0.2, 0.4]);
    }

    #[test]
    fn five_one_folds_down_without_clipping_and_drops_lfe() {
        let layout = layouts::CHANNEL_LAYOUT_5P1;
        let d = Downmix::for_channels(&layout).unwrap();
        assert_eq!(d.channels(), 6);
        // Full scale on every channel must stay within [-1, 1].
        let ones: Vec<&[f32]> = vec![&[1.0]; 6];
        let b = buffer(layout.clone(), &ones);
        let mut out = [0.0; 2];
        d.mix(&b, 0, &mut out);
        assert!(out[0] <= 1.0 + 1e-6 && out[1] <= 1.0 + 1e-6, "{out:?}");
        assert!(out[0] > 0.9, "{out:?}");
        // Only the LFE channel: silence.
        let idx = layout
            .get_canonical_index_for_positioned_channel(Position::LFE1)
            .unwrap();
        let mut planes: Vec<&[f32]> = vec![&[0.0]; 6];
        planes[idx] = &[1.0];
        let b = buffer(layout.clone(), &planes);
        d.mix(&b, 0, &mut out);
        assert_eq!(out, [0.0, 0.0]);
        // Front left only reaches the left side.
        let idx = layout
            .get_canonical_index_for_positioned_channel(Position::FRONT_LEFT)
            .unwrap();
        let mut planes: Vec<&[f32]> = vec![&[0.0]; 6];
        planes[idx] = &[1.0];
        let b = buffer(layout, &planes);
        d.mix(&b, 0, &mut out);
        assert!(out[0] > 0.3 && out[1] == 0.0, "{out:?}");
    }

    #[test]
    fn unpositioned_channels_alternate_sides() {
        let d = Downmix::for_channels(&Channels::Discrete(4)).unwrap();
        let b = buffer(Channels::Discrete(4), &[&[1.0], &[0.0], &[1.0], &[0.0]]);
        let mut out = [0.0; 2];
        d.mix(&b, 0, &mut out);
        assert_eq!(out, [1.0, 0.0]);
        assert!(Downmix::for_channels(&Channels::None).is_none());
    }
}
