//! A static HTTP/1.1 server over the generated test media on 127.0.0.1, with byte ranges (the
//! node's http source seeks with Range requests). One thread per connection, one request per
//! connection: enough for a node fetching a few files.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

pub struct MediaServer {
    port: u16,
}

impl MediaServer {
    pub fn start(root: &Path) -> std::io::Result<MediaServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let root = root.canonicalize()?;
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &root);
                });
            }
        });
        Ok(MediaServer { port })
    }

    /// URL of a file under the media root.
    pub fn url(&self, rel: &str) -> String {
        format!("http://127.0.0.1:{}/{rel}", self.port)
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "ogg" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        "webm" => "audio/webm",
        "m3u" => "audio/x-mpegurl",
        "pls" => "audio/x-scpls",
        _ => "application/octet-stream",
    }
}

fn serve(conn: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_owned());
        }
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let rel = target
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    let file: Option<PathBuf> = root
        .join(rel)
        .canonicalize()
        .ok()
        .filter(|f| f.starts_with(root) && f.is_file());
    let Some(file) = file.filter(|_| !rel.contains("..")) else {
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
        )?;
        return Ok(());
    };
    let size = std::fs::metadata(&file)?.len();
    let (mut start, mut end, mut status) = (0, size.saturating_sub(1), "200 OK");
    let mut extra = String::new();
    if let Some(spec) = range.as_deref().and_then(|r| r.strip_prefix("bytes="))
        && let Some((a, b)) = spec.split_once('-')
    {
        if a.is_empty() {
            start = size.saturating_sub(b.parse().unwrap_or(0));
        } else {
            start = a.parse().unwrap_or(0);
            if let Ok(b) = b.parse::<u64>() {
                end = end.min(b);
            }
        }
        if start >= size || start > end {
            write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        status = "206 Partial Content";
        extra = format!("Content-Range: bytes {start}-{end}/{size}\r\n");
    }
    let len = end + 1 - start;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nAccept-Ranges: bytes\r\n{extra}Content-Length: {len}\r\nConnection: close\r\n\r\n",
        content_type(&file)
    )?;
    if method != "HEAD" {
        let mut f = std::fs::File::open(&file)?;
        f.seek(SeekFrom::Start(start))?;
        std::io::copy(&mut f.take(len), &mut out)?;
    }
    out.flush()
}
