//! The `filters` object of a player, as Lavalink's clients send and receive it (spec §2.6, §7).
//!
//! Every sub-object is stored as sent with defaults filled in, and echoed complete. Which filters
//! are *active* and what their numbers mean for the sound lives in `audio::filters`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::omissible::non_null;

/// The ten built-in filter names, in the order `/v4/info` lists them.
pub const BUILTIN_FILTERS: [&str; 10] = [
    "volume",
    "equalizer",
    "karaoke",
    "timescale",
    "tremolo",
    "vibrato",
    "distortion",
    "rotation",
    "channelMix",
    "lowPass",
];

/// A player's complete filter configuration. `{}` means "no filters".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// Filter volume multiplier, 0.0 ..= 5.0; 1.0 is neutral. May be absent, never `null`.
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub volume: Option<f32>,
    /// 15-band equalizer; bands not listed have gain 0. May be absent, never `null`.
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub equalizer: Option<Vec<Band>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karaoke: Option<Karaoke>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timescale: Option<Timescale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tremolo: Option<Tremolo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vibrato: Option<Vibrato>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distortion: Option<Distortion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_mix: Option<ChannelMix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_pass: Option<LowPass>,
    /// Plugin filters by extension name. We have no plugins: accepted, never echoed.
    #[serde(default, skip_serializing)]
    pub plugin_filters: Map<String, Value>,
}

/// One equalizer band. `gain` defaults to 1.0 when omitted, as in Lavalink.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub band: i32,
    #[serde(default = "one_f32")]
    pub gain: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Karaoke {
    pub level: f32,
    pub mono_level: f32,
    pub filter_band: f32,
    pub filter_width: f32,
}

impl Default for Karaoke {
    fn default() -> Self {
        Karaoke {
            level: 1.0,
            mono_level: 1.0,
            filter_band: 220.0,
            filter_width: 100.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timescale {
    pub speed: f64,
    pub pitch: f64,
    pub rate: f64,
}

impl Default for Timescale {
    fn default() -> Self {
        Timescale {
            speed: 1.0,
            pitch: 1.0,
            rate: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tremolo {
    pub frequency: f32,
    pub depth: f32,
}

impl Default for Tremolo {
    fn default() -> Self {
        Tremolo {
            frequency: 2.0,
            depth: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vibrato {
    pub frequency: f32,
    pub depth: f32,
}

impl Default for Vibrato {
    fn default() -> Self {
        Vibrato {
            frequency: 2.0,
            depth: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rotation {
    pub rotation_hz: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Distortion {
    pub sin_offset: f32,
    pub sin_scale: f32,
    pub cos_offset: f32,
    pub cos_scale: f32,
    pub tan_offset: f32,
    pub tan_scale: f32,
    pub offset: f32,
    pub scale: f32,
}

impl Default for Distortion {
    fn default() -> Self {
        Distortion {
            sin_offset: 0.0,
            sin_scale: 1.0,
            cos_offset: 0.0,
            cos_scale: 1.0,
            tan_offset: 0.0,
            tan_scale: 1.0,
            offset: 0.0,
            scale: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChannelMix {
    pub left_to_left: f32,
    pub left_to_right: f32,
    pub right_to_left: f32,
    pub right_to_right: f32,
}

impl Default for ChannelMix {
    fn default() -> Self {
        ChannelMix {
            left_to_left: 1.0,
            left_to_right: 0.0,
            right_to_left: 0.0,
            right_to_right: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LowPass {
    pub smoothing: f32,
}

impl Default for LowPass {
    fn default() -> Self {
        LowPass { smoothing: 20.0 }
    }
}

fn one_f32() -> f32 {
    1.0
}

impl Filters {
    /// Checks every value against the domain its DSP accepts (spec §7.2). The error names the
    /// field, e.g. `filters.timescale.speed must be greater than 0`.
    ///
    /// Values with a natural "off" meaning (depth 0, smoothing ≤ 1, rotation 0) are accepted and
    /// simply leave the filter inactive; equalizer gains are clamped by the DSP as lavaplayer does.
    pub fn validate(&self) -> Result<(), String> {
        fn finite(name: &str, v: f64) -> Result<(), String> {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("filters.{name} must be a finite number"))
            }
        }
        if let Some(v) = self.volume {
            finite("volume", v as f64)?;
            if !(0.0..=5.0).contains(&v) {
                return Err("filters.volume must be between 0.0 and 5.0".into());
            }
        }
        if let Some(bands) = &self.equalizer {
            for b in bands {
                if !(0..=14).contains(&b.band) {
                    return Err(format!(
                        "filters.equalizer band {} is out of range 0..14",
                        b.band
                    ));
                }
                finite("equalizer.gain", b.gain as f64)?;
            }
        }
        if let Some(k) = &self.karaoke {
            for (n, v) in [
                ("level", k.level),
                ("monoLevel", k.mono_level),
                ("filterBand", k.filter_band),
                ("filterWidth", k.filter_width),
            ] {
                finite(&format!("karaoke.{n}"), v as f64)?;
            }
        }
        if let Some(t) = &self.timescale {
            for (n, v) in [("speed", t.speed), ("pitch", t.pitch), ("rate", t.rate)] {
                finite(&format!("timescale.{n}"), v)?;
                if v <= 0.0 {
                    return Err(format!("filters.timescale.{n} must be greater than 0"));
                }
            }
        }
        if let Some(t) = &self.tremolo {
            finite("tremolo.frequency", t.frequency as f64)?;
            finite("tremolo.depth", t.depth as f64)?;
            if !(0.0..=1.0).contains(&t.depth) {
                return Err("filters.tremolo.depth must be between 0.0 and 1.0".into());
            }
            if t.depth != 0.0 && t.frequency <= 0.0 {
                return Err("filters.tremolo.frequency must be greater than 0".into());
            }
        }
        if let Some(v) = &self.vibrato {
            finite("vibrato.frequency", v.frequency as f64)?;
            finite("vibrato.depth", v.depth as f64)?;
            if !(0.0..=1.0).contains(&v.depth) {
                return Err("filters.vibrato.depth must be between 0.0 and 1.0".into());
            }
            if v.depth != 0.0 && !(v.frequency > 0.0 && v.frequency <= 14.0) {
                return Err(
                    "filters.vibrato.frequency must be greater than 0 and at most 14".into(),
                );
            }
        }
        if let Some(r) = &self.rotation {
            finite("rotation.rotationHz", r.rotation_hz)?;
        }
        if let Some(d) = &self.distortion {
            for (n, v) in [
                ("sinOffset", d.sin_offset),
                ("sinScale", d.sin_scale),
                ("cosOffset", d.cos_offset),
                ("cosScale", d.cos_scale),
                ("tanOffset", d.tan_offset),
                ("tanScale", d.tan_scale),
                ("offset", d.offset),
                ("scale", d.scale),
            ] {
                finite(&format!("distortion.{n}"), v as f64)?;
            }
        }
        if let Some(c) = &self.channel_mix {
            for (n, v) in [
                ("leftToLeft", c.left_to_left),
                ("leftToRight", c.left_to_right),
                ("rightToLeft", c.right_to_left),
                ("rightToRight", c.right_to_right),
            ] {
                finite(&format!("channelMix.{n}"), v as f64)?;
            }
        }
        if let Some(l) = &self.low_pass {
            finite("lowPass.smoothing", l.smoothing as f64)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timescale_echoed_complete() {
        let f: Filters = serde_json::from_str(r#"{"timescale":{"speed":1.2}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"timescale":{"speed":1.2,"pitch":1.0,"rate":1.0}}"#
        );
    }

    #[test]
    fn equalizer_echoed_exactly_and_gain_defaults_to_one() {
        let f: Filters =
            serde_json::from_str(r#"{"equalizer":[{"band":0,"gain":0.2},{"band":3}]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"equalizer":[{"band":0,"gain":0.2},{"band":3,"gain":1.0}]}"#
        );
    }

    #[test]
    fn null_volume_and_equalizer_rejected_object_filters_nullable() {
        assert!(serde_json::from_str::<Filters>(r#"{"volume":null}"#).is_err());
        assert!(serde_json::from_str::<Filters>(r#"{"equalizer":null}"#).is_err());
        let f: Filters = serde_json::from_str(r#"{"karaoke":null,"lowPass":null}"#).unwrap();
        assert_eq!(f, Filters::default());
    }

    #[test]
    fn plugin_filters_not_echoed() {
        let f: Filters = serde_json::from_str(r#"{"pluginFilters":{"echo":{"x":1}}}"#).unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), "{}");
    }

    #[test]
    fn validation_names_the_field() {
        let f: Filters = serde_json::from_str(r#"{"timescale":{"pitch":0}}"#).unwrap();
        assert_eq!(
            f.validate().unwrap_err(),
            "filters.timescale.pitch must be greater than 0"
        );
        let f: Filters = serde_json::from_str(r#"{"equalizer":[{"band":15,"gain":0.1}]}"#).unwrap();
        assert!(f.validate().unwrap_err().contains("band 15"));
        let f: Filters = serde_json::from_str(r#"{"volume":6.0}"#).unwrap();
        assert!(f.validate().is_err());
        let f: Filters = serde_json::from_str(
            r#"{"lowPass":{"smoothing":0},"tremolo":{"depth":0,"frequency":0}}"#,
        )
        .unwrap();
        assert!(f.validate().is_ok());
    }
}
