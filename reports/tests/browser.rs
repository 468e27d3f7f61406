//! The HTML report opened in a real headless browser (Debian's chromium).
//!
//! Checks the DOM the browser built (headline table present, one non-empty
//! <svg> per chart) and a screenshot whose pixels are not all background.
//! Without chromium the test prints a skip message, unless CI=true, where it
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reports::ReportOptions;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs chromium with a time limit, returning stdout.
fn run_chromium(bin: &Path, args: &[String], work: &Path) -> String {
    let out_path = work.join(format!("chromium-{}.out", args.len()));
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--allow-file-access-from-files",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&out_path).unwrap()
}

/// Each `<svg …>…</svg>` of the DOM, in order.
fn svgs(dom: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find("<svg") {
        let tail = &rest[i..];
        let end = tail.find("</svg>").map(|e| e + 6).unwrap_or(tail.len());
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium is required when CI=true (apt-get install -y chromium)");
        }
        eprintln!("SKIP report_renders_in_headless_chromium: chromium not found (apt-get install -y chromium)");
        return;
    };
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let s = reports::load(&fx.join("standard.json")).unwrap();
    let p = reports::load(&fx.join("p2p.json")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("report");
    reports::render(&[s, p], &out, &ReportOptions::default())
        .unwrap()
        .expect("headline");
    let chart_files = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .map(|e| e.path().extension().is_some_and(|x| x == "svg"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(chart_files, 8);
    let url = format!("file://{}", out.join("index.html").display());

    // The DOM as the browser parsed it.
    let dom = run_chromium(&bin, &["--dump-dom".into(), url.clone()], work.path());
    assert!(
        dom.contains("id=\"headline\""),
        "no headline table in the DOM"
    );
    assert!(dom.contains("P2P beat standard"));
    assert!(dom.contains("4× more VMs") && dom.contains("about half the time"));
    let found = svgs(&dom);
    assert_eq!(found.len(), chart_files, "one inline <svg> per chart");
    for (i, svg) in found.iter().enumerate() {
        let marks = svg.matches("<path").count() + svg.matches("<rect").count();
        // Every chart has a background rect plus at least one mark.
        assert!(
            marks >= 2,
            "svg #{i} is empty: {}",
            &svg[..svg.len().min(200)]
        );
        assert!(svg.contains("</text>"), "svg #{i} has no labels");
    }

    // A screenshot: not all background.
    let png_path = work.path().join("shot.png");
    run_chromium(
        &bin,
        &[
            "--window-size=1280,2400".into(),
            format!("--screenshot={}", png_path.display()),
            url,
        ],
        work.path(),
    );
    let file = std::fs::File::open(&png_path).expect("screenshot written");
    let decoder = png::Decoder::new(file);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let px = info.color_type.samples();
    assert!(px >= 3, "unexpected colour type {:?}", info.color_type);
    let background = &bytes[..px];
    let pixels = bytes.len() / px;
    let differing = bytes
        .chunks(px)
        .filter(|c| c[..3] != background[..3])
        .count();
    let share = differing as f64 / pixels as f64;
    assert!(
        share > 0.05,
        "screenshot is almost all background ({:.2}% differs)",
        share * 100.0
    );
    // Colour of both systems' lines is on screen (orange and teal).
    let has = |rgb: [u8; 3]| {
        bytes.chunks(px).any(|c| {
            c[..3]
                .iter()
                .zip(rgb)
                .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() < 12)
        })
    };
    assert!(has([0xd9, 0x5f, 0x02]), "standard's orange not drawn");
    assert!(has([0x1b, 0x9e, 0x77]), "p2p's teal not drawn");
    if let Ok(dir) = std::env::var("REPORT_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&png_path, Path::new(&dir).join("report-screenshot.png"));
    }
}
