#!/usr/bin/env bash
# Writes the test media described in tests/media/README.md into tests/media/generated/
# (or into the directory given as the first argument).
#
# Idempotent: the output carries a stamp (a hash of this script plus the tool versions) and a
# manifest; when both match, nothing is regenerated. Concurrent callers are serialised with a
# lock file, so parallel test binaries can all call it.
#
# Needs ffmpeg (with libmp3lame, libvorbis, libopus) and sox. When they are missing and we are
# root, they are installed from the distribution with apt-get; otherwise the script stops with a
# message saying what to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/generated}"

die() {
    echo "generate.sh: $*" >&2
    exit 1
}

ensure_tools() {
    local missing=()
    command -v ffmpeg >/dev/null || missing+=(ffmpeg)
    command -v ffprobe >/dev/null || missing+=(ffmpeg)
    command -v sox >/dev/null || missing+=(sox)
    command -v flock >/dev/null || missing+=(util-linux)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "missing tools: ${missing[*]}. Install them (Debian/Ubuntu: apt-get install ffmpeg sox) and run again."
    fi
    echo "generate.sh: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

ensure_tools
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

stamp="$(
    {
        cat "${BASH_SOURCE[0]}"
        ffmpeg -hide_banner -version 2>/dev/null | head -n 1
        sox --version 2>/dev/null
    } | sha256sum | cut -d' ' -f1
)"

up_to_date() {
    [ -f "$out/.stamp" ] && [ -f "$out/.manifest" ] || return 1
    [ "$(cat "$out/.stamp")" = "$stamp" ] || return 1
    local f
    while IFS= read -r f; do
        [ -f "$out/$f" ] || return 1
    done <"$out/.manifest"
    return 0
}

if up_to_date; then
    exit 0
fi

echo "generate.sh: writing test media into $out" >&2
rm -f "$out/.stamp" "$out/.manifest"
rm -rf "$out/staircase" "$out/signals" "$out/faults" "$out/hls" "$out/icy" "$out/playlist.m3u" \
    "$out/playlist.pls"
mkdir -p "$out/staircase" "$out/signals" "$out/faults/truncated" "$out/faults/corrupt" \
    "$out/hls/ts" "$out/hls/fmp4" "$out/icy"

# ---------------------------------------------------------------------------------------------
# Helpers

ff() {
    # Quiet, overwriting, deterministic ffmpeg.
    ffmpeg -hide_banner -loglevel error -nostdin -y "$@"
}

# The staircase: second k is a sine of (200 + 100 k) Hz at peak amplitude 0.5 (-6.02 dBFS peak,
# -9.03 dBFS RMS). Every step is a whole number of hertz, so the phase is a multiple of 2 pi at
# each second boundary and the signal has no clicks. The expression uses the time within the
# current second, which keeps the phase exact over long files.
STAIR_SECONDS=10
stair_expr='0.5*sin(2*PI*(200+100*floor(t))*(t-floor(t)))'

# staircase_src RATE CHANNEL_LAYOUT: lavfi source of the staircase on every channel.
staircase_src() {
    local rate="$1" layout="$2" n exprs
    case "$layout" in
        mono) n=1 ;;
        stereo) n=2 ;;
        5.1) n=6 ;;
        *) die "unknown layout $layout" ;;
    esac
    local amp_expr="$stair_expr"
    # Six channels at 0.5 would clip any downmix that sums them; use 0.25 there.
    [ "$n" -eq 6 ] && amp_expr='0.25*sin(2*PI*(200+100*floor(t))*(t-floor(t)))'
    exprs="$amp_expr"
    for ((i = 1; i < n; i++)); do exprs="$exprs|$amp_expr"; done
    echo "aevalsrc=exprs=$exprs:s=$rate:c=$layout:d=$STAIR_SECONDS"
}

tags=(-metadata "title=Acoustic Staircase" -metadata "artist=Acoustic Test Media")

# ---------------------------------------------------------------------------------------------
# The staircase in every format

s="$out/staircase"
bx=(-fflags +bitexact -flags:a +bitexact)

# Lossless masters (also test inputs themselves).
ff -f lavfi -i "$(staircase_src 44100 stereo)" -c:a pcm_s16le "${bx[@]}" "$s/staircase-44k.wav"
ff -f lavfi -i "$(staircase_src 48000 stereo)" -c:a pcm_s16le "${bx[@]}" "$s/staircase-48k.wav"
ff -f lavfi -i "$(staircase_src 44100 mono)" -c:a pcm_s16le "${bx[@]}" "$s/staircase-mono.wav"
ff -f lavfi -i "$(staircase_src 22050 mono)" -c:a pcm_s16le "${bx[@]}" "$s/.master-22k-mono.wav"
ff -f lavfi -i "$(staircase_src 96000 stereo)" -c:a flac -sample_fmt s32 -bits_per_raw_sample 24 \
    "${bx[@]}" "$s/staircase-96k.flac"
ff -f lavfi -i "$(staircase_src 48000 5.1)" -c:a flac -sample_fmt s16 "${bx[@]}" "$s/staircase-5.1.flac"

m44="$s/staircase-44k.wav"
m48="$s/staircase-48k.wav"

# MP3 44.1 kHz stereo: tagged (ID3v2.3 title/artist) CBR 320 kbps, and untagged (no ID3 at
# all) VBR with a Xing header. (LAME's low CBR rates lower a pure tone's level by ~0.5 dB; these
# settings keep it within 0.05 dB of the source.)
ff -i "$m44" -c:a libmp3lame -b:a 320k -id3v2_version 3 "${tags[@]}" "${bx[@]}" "$s/staircase.mp3"
ff -i "$m44" -map_metadata -1 -c:a libmp3lame -q:a 2 -id3v2_version 0 -write_id3v1 0 \
    "${bx[@]}" "$s/staircase-untagged.mp3"
# MP3 22.05 kHz mono, VBR.
ff -i "$s/.master-22k-mono.wav" -c:a libmp3lame -q:a 2 -id3v2_version 3 "${tags[@]}" "${bx[@]}" \
    "$s/staircase-22k-mono.mp3"
rm -f "$s/.master-22k-mono.wav"

# AAC-LC in M4A: moov before mdat (faststart) and after it (ffmpeg's default).
ff -i "$m44" -c:a aac -profile:a aac_low -b:a 128k "${tags[@]}" -movflags +faststart "${bx[@]}" \
    "$s/staircase-faststart.m4a"
ff -i "$m44" -c:a aac -profile:a aac_low -b:a 128k "${tags[@]}" "${bx[@]}" "$s/staircase-moovlast.m4a"
# ALAC in M4A.
ff -i "$m44" -c:a alac "${tags[@]}" "${bx[@]}" "$s/staircase-alac.m4a"
# Raw ADTS AAC (no container, no tags).
ff -i "$m44" -c:a aac -profile:a aac_low -b:a 128k -f adts "${bx[@]}" "$s/staircase.aac"

# FLAC 44.1 kHz stereo with Vorbis comments.
ff -i "$m44" -c:a flac "${tags[@]}" "${bx[@]}" "$s/staircase.flac"

# Ogg Vorbis, tagged.
ff -i "$m44" -c:a libvorbis -q:a 5 "${tags[@]}" "${bx[@]}" "$s/staircase.ogg"

# Opus, 48 kHz stereo, 20 ms frames, in Ogg, WebM and Matroska.
opus=(-c:a libopus -b:a 128k -vbr on -application audio -frame_duration 20)
ff -i "$m48" "${opus[@]}" "${tags[@]}" "${bx[@]}" "$s/staircase.opus"
ff -i "$m48" "${opus[@]}" "${tags[@]}" -f webm "${bx[@]}" "$s/staircase.webm"
ff -i "$m48" "${opus[@]}" "${tags[@]}" -f matroska "${bx[@]}" "$s/staircase.mka"

# ---------------------------------------------------------------------------------------------
# Signals for filter tests (48 kHz, the pipeline's own rate, so no resampling is involved)

g="$out/signals"
SIG_SECONDS=5
# Karaoke: 440 Hz in both channels (centre) plus 1000 Hz in the left channel only, each at
# peak amplitude 0.25.
ff -f lavfi -i "aevalsrc=exprs=0.25*sin(2*PI*440*t)+0.25*sin(2*PI*1000*t)|0.25*sin(2*PI*440*t):s=48000:c=stereo:d=$SIG_SECONDS" \
    -c:a pcm_s16le "${bx[@]}" "$g/karaoke.wav"
# Left only: 440 Hz at peak 0.5 in the left channel, silence in the right.
ff -f lavfi -i "aevalsrc=exprs=0.5*sin(2*PI*440*t)|0:s=48000:c=stereo:d=$SIG_SECONDS" \
    -c:a pcm_s16le "${bx[@]}" "$g/left-440.wav"
# 1 kHz at peak 0.5 (-6.02 dBFS peak, -9.03 dBFS RMS) in both channels.
ff -f lavfi -i "aevalsrc=exprs=0.5*sin(2*PI*1000*t)|0.5*sin(2*PI*1000*t):s=48000:c=stereo:d=$SIG_SECONDS" \
    -c:a pcm_s16le "${bx[@]}" "$g/tone-1k.wav"
# White and pink noise, repeatable (sox -R), independent per channel (one generator each).
sox -R -n -r 48000 -c 2 -b 16 -e signed-integer "$g/white-noise.wav" synth "$SIG_SECONDS" whitenoise whitenoise vol 0.25
sox -R -n -r 48000 -c 2 -b 16 -e signed-integer "$g/pink-noise.wav" synth "$SIG_SECONDS" pinknoise pinknoise vol 0.25

# ---------------------------------------------------------------------------------------------
# HLS: the staircase as AAC-LC 128 kbps in 2 s segments, as MPEG-TS (ADTS in PES) and as fMP4
# (an init segment, then moof+mdat segments), each with a VOD media playlist; and master
# playlists that the sources must see through to the best audio rendition.

h="$out/hls"
hls_common=(-c:a aac -profile:a aac_low -b:a 128k -f hls -hls_time 2 -hls_playlist_type vod
    -hls_list_size 0)
ff -i "$m44" "${hls_common[@]}" -hls_segment_type mpegts -hls_segment_filename "$h/ts/seg%02d.ts" \
    "${bx[@]}" "$h/ts/index.m3u8"
ff -i "$m44" "${hls_common[@]}" -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 \
    -hls_segment_filename "$h/fmp4/seg%02d.m4s" "${bx[@]}" "$h/fmp4/index.m3u8"
# Variants: a low audio-only one and a video one (neither exists: picking either fails), and the
# best audio-only one (the TS playlist).
cat >"$h/master-variants.m3u8" <<'EOF'
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"
missing-low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720
missing-video/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS="mp4a.40.2"
ts/index.m3u8
EOF
# A video variant whose audio is an EXT-X-MEDIA rendition group: the default rendition (fMP4).
cat >"$h/master-renditions.m3u8" <<'EOF'
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="other",LANGUAGE="de",DEFAULT=NO,AUTOSELECT=YES,URI="missing-de/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="main",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="fmp4/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2500000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,AUDIO="aud"
missing-video/index.m3u8
EOF

# ---------------------------------------------------------------------------------------------
# Internet radio (ICY): 30 s of a steady 440 Hz tone at peak 0.5 as MP3 CBR 128 kbps without
# tags, which the test media server streams endlessly with `icy-metaint` blocks in between.

ff -f lavfi -i "aevalsrc=exprs=0.5*sin(2*PI*440*t)|0.5*sin(2*PI*440*t):s=44100:c=stereo:d=30" \
    -c:a libmp3lame -b:a 128k -id3v2_version 0 -write_id3v1 0 -write_xing 0 "${bx[@]}" \
    "$out/icy/tone-440.mp3"

# ---------------------------------------------------------------------------------------------
# Faults

f="$out/faults"
fault_sources=(
    staircase.mp3 staircase-faststart.m4a staircase-moovlast.m4a staircase-alac.m4a staircase.aac
    staircase.flac staircase-44k.wav staircase.ogg staircase.opus staircase.webm staircase.mka
)
# 4 KiB of repeatable noise used as the corruption.
garbage="$f/.garbage"
sox -R -n -r 8000 -c 1 -b 16 -e signed-integer -t raw - synth 0.256 whitenoise | head -c 4096 >"$garbage"
[ "$(stat -c %s "$garbage")" -eq 4096 ] || die "could not make the corruption bytes"
for name in "${fault_sources[@]}"; do
    size="$(stat -c %s "$s/$name")"
    half=$((size / 2))
    head -c "$half" "$s/$name" >"$f/truncated/$name"
    cp "$s/$name" "$f/corrupt/$name"
    dd if="$garbage" of="$f/corrupt/$name" bs=4096 count=1 seek="$half" oflag=seek_bytes conv=notrunc \
        status=none
done
rm -f "$garbage"

# A 0-byte file.
: >"$f/empty.mp3"

# A WAV whose header declares 10 hours (44.1 kHz mono 16-bit: 3 175 200 000 data bytes) on a
# body of one second (the staircase's first second, 200 Hz).
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
le16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"; }
declared=$((10 * 3600 * 44100 * 2))
{
    printf 'RIFF'
    le32 $((declared + 36))
    printf 'WAVEfmt '
    le32 16
    le16 1     # PCM
    le16 1     # mono
    le32 44100 # sample rate
    le32 88200 # byte rate
    le16 2     # block align
    le16 16    # bits per sample
    printf 'data'
    le32 "$declared"
    ff -f lavfi -i "$(staircase_src 44100 mono)" -t 1 -f s16le -c:a pcm_s16le -
} >"$f/ten-hours.wav"

# An HTML page saved as .mp3.
cat >"$f/not-audio.mp3" <<'EOF'
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>404 Not Found</title></head>
<body>
<h1>Not Found</h1>
<p>The requested URL was not found on this server. This page is not audio.</p>
</body>
</html>
EOF

# ---------------------------------------------------------------------------------------------
# Playlists (relative URLs, resolved against the playlist's own location)

cat >"$out/playlist.m3u" <<'EOF'
#EXTM3U
#EXTINF:10,Acoustic Test Media - Staircase (MP3)
staircase/staircase.mp3
#EXTINF:10,Acoustic Test Media - Staircase (FLAC)
staircase/staircase.flac
#EXTINF:10,Acoustic Test Media - Staircase (Ogg Vorbis)
staircase/staircase.ogg
EOF

cat >"$out/playlist.pls" <<'EOF'
[playlist]
File1=staircase/staircase.mp3
Title1=Acoustic Test Media - Staircase (MP3)
Length1=10
File2=staircase/staircase-faststart.m4a
Title2=Acoustic Test Media - Staircase (AAC)
Length2=10
File3=staircase/staircase.opus
Title3=Acoustic Test Media - Staircase (Opus)
Length3=10
NumberOfEntries=3
Version=2
EOF

# ---------------------------------------------------------------------------------------------
# Manifest and stamp, written last: a run cut short regenerates next time.

(cd "$out" && find . -type f ! -name '.*' | sed 's|^\./||' | LC_ALL=C sort) >"$out/.manifest"
echo "$stamp" >"$out/.stamp"
echo "generate.sh: $(wc -l <"$out/.manifest") files written" >&2
