//! The pictures of a run (plotters), each written as `<stem>.png` and `<stem>.svg` from the same
//! drawing code, with text in DejaVu Sans embedded in the binary (no system font lookup).
//!
//! - [`segments`]: a title (and a subtitle with the scores) at the top; for each of the first
//!   `max_videos` videos, its name and frame count on the left and two lanes on the right, the
//!   ground truth above the prediction, each normalised to the video's length. A video without
//!   ground truth gets the prediction lane only. Ground-truth classes have one colour each
//!   (negative ids, the background, a fixed dark grey); a predicted cluster is drawn in the colour
//!   of the ground-truth class the activity-level Hungarian matching gave it, so agreement shows as
//!   matching colours, and in light grey when unmatched; without a matching every cluster has a
//!   colour of its own. Below, a legend in columns: the ground-truth classes by name, then the
//!   clusters by their matched class ("cluster 3 → add_milk", "cluster 5 (unmatched)").
//! - [`curve`]: the training losses per step (total, frames, segments, refined: those present) as
//!   lines over "step" and "cross-entropy", and, in a panel below sharing the step axis, the
//!   validation MoF (0–1) of each epoch that has one. Without steps, a picture that says so.
//! - [`error_bars`] (`clot report`): a metric against a setting, points with ± spread bars at the
//!   plot's own x ticks (the swept values or categories), one colour per series, joined by lines
//!   on a numeric axis and spread sideways around each category otherwise; legend below.
//! - [`lines`] (`clot report`): several lines over one axis (the loss per step of each seed),
//!   legend below.
//!
//! Pictures are 1200 px wide (text 15–26 px); the segments picture grows in height with its videos
//! and legend. Every file is written to a temporary name beside the target and renamed into place;
//! an error names the file. Cost: O(frames) rectangles per lane (one per run of equal colour), O(steps)
//! line vertices.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord, DrawingErrorKind};

use crate::train::{CurvePoint, VideoResult};

/// What [`segments`] draws.
pub struct SegmentsPlot<'a> {
    /// First line, e.g. "Breakfast / coffee · mode clot · seed 0".
    pub title: String,
    /// Second line, e.g. the activity-level scores; `None` when unscored.
    pub subtitle: Option<String>,
    pub results: &'a [VideoResult],
    /// Ground-truth id → class name (from the mapping); `None` falls back to "class k", or
    /// "background" for a negative id.
    pub class_name: &'a dyn Fn(i32) -> Option<String>,
    /// Predicted cluster → matched ground-truth id; `None` when there is no ground truth (each
    /// cluster then gets a colour of its own).
    pub matched: Option<&'a dyn Fn(i32) -> Option<i32>>,
    /// How many videos to draw, from the first.
    pub max_videos: usize,
}

impl fmt::Debug for SegmentsPlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentsPlot")
            .field("title", &self.title)
            .field("subtitle", &self.subtitle)
            .field("results", &self.results.len())
            .field("matched", &self.matched.is_some())
            .field("max_videos", &self.max_videos)
            .finish_non_exhaustive()
    }
}

/// Writes the segmentation picture to `png_path` and beside it with the extension `svg`.
pub fn segments(png_path: &Path, plot: &SegmentsPlot<'_>) -> Result<()> {
    fonts()?;
    write_pictures(png_path, &SegmentsLayout::new(plot)?)
}

/// Writes the training curve to `png_path` and beside it with the extension `svg`.
pub fn curve(png_path: &Path, title: &str, curve: &[CurvePoint]) -> Result<()> {
    fonts()?;
    write_pictures(png_path, &CurveLayout::new(title, curve)?)
}

// ---------------------------------------------------------------------------------------------
// Fonts, text, colours

const FAMILY: &str = "sans-serif";
const WIDTH: u32 = 1200;
const MARGIN: i32 = 20;
const TITLE_SIZE: f64 = 26.0;
const SUBTITLE_SIZE: f64 = 18.0;
const TEXT_SIZE: f64 = 17.0;
const SMALL_SIZE: f64 = 15.0;
const HEADER_TOP: i32 = 16;
const TITLE_LINE: i32 = 34;
const SUBTITLE_LINE: i32 = 26;
const HEADER_GAP: i32 = 10;
const INK: RGBColor = RGBColor(25, 25, 25);
const SOFT_INK: RGBColor = RGBColor(95, 95, 95);
const FRAME: RGBColor = RGBColor(120, 120, 120);
/// Negative ground-truth ids (the background).
const BACKGROUND: RGBColor = RGBColor(128, 128, 128);
/// Predicted clusters the matching left without a class.
const UNMATCHED: RGBColor = RGBColor(214, 214, 214);

/// Registers DejaVu Sans (regular and bold) as plotters' "sans-serif", once per process.
fn fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if !ok {
        bail!("plot: the embedded DejaVu Sans font could not be read");
    }
    Ok(())
}

/// The embedded faces, regular and bold, for [`Bitmap`]'s text.
fn faces() -> Option<&'static [FontRef<'static>; 2]> {
    static FACES: OnceLock<Option<[FontRef<'static>; 2]>> = OnceLock::new();
    FACES
        .get_or_init(|| {
            Some([
                FontRef::try_from_slice(dejavu::sans::regular()).ok()?,
                FontRef::try_from_slice(dejavu::sans::bold()).ok()?,
            ])
        })
        .as_ref()
}

fn font(size: f64, bold: bool) -> FontDesc<'static> {
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    (FAMILY, size, style).into_font()
}

fn text_style(size: f64, bold: bool, colour: RGBColor, h: HPos) -> TextStyle<'static> {
    TextStyle {
        font: font(size, bold),
        color: colour.to_backend_color(),
        pos: Pos::new(h, VPos::Top),
    }
}

/// Width of `text` in pixels at `size`.
fn text_width(text: &str, size: f64, bold: bool) -> Result<i32> {
    let (w, _) = font(size, bold)
        .box_size(text)
        .map_err(|e| anyhow!("plot: measuring text: {e}"))?;
    Ok(w as i32)
}

/// `text`, shortened in the middle with "…" until it fits `max` pixels.
fn fit(text: &str, size: f64, bold: bool, max: i32) -> Result<String> {
    if text_width(text, size, bold)? <= max {
        return Ok(text.to_owned());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut keep = chars.len();
    while keep > 1 {
        keep -= 1;
        let head = keep.div_ceil(2);
        let tail = keep - head;
        let short: String = chars[..head]
            .iter()
            .chain(std::iter::once(&'…'))
            .chain(&chars[chars.len() - tail..])
            .collect();
        if text_width(&short, size, bold)? <= max {
            return Ok(short);
        }
    }
    Ok("…".into())
}

/// Tableau's 20 colours without the greys, the 9 strong ones first so that neighbouring ids
/// differ in hue; ids past them walk the hue circle by the golden angle at three lightnesses.
const PALETTE: [RGBColor; 18] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// The colour of ground-truth class `id` (and of cluster `id` when there is no matching).
fn class_colour(id: i32) -> RGBColor {
    if id < 0 {
        return BACKGROUND;
    }
    let i = id as usize;
    if let Some(&c) = PALETTE.get(i) {
        return c;
    }
    let j = i - PALETTE.len();
    let hue = (0.05 + j as f64 * 0.618_033_988_75).fract();
    let lightness = [0.45, 0.68, 0.33][j % 3];
    let (r, g, b) = HSLColor(hue, 0.62, lightness).to_rgba().rgb();
    RGBColor(r, g, b)
}

fn class_label(class_name: &dyn Fn(i32) -> Option<String>, id: i32) -> String {
    class_name(id).unwrap_or_else(|| {
        if id < 0 {
            "background".into()
        } else {
            format!("class {id}")
        }
    })
}

fn draw_err(e: impl fmt::Display) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// Draws `text` at `(x, y)`, anchored as `style` says (top edge at `y`).
fn label<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    (x, y): (i32, i32),
    style: &TextStyle<'_>,
) -> Result<()> {
    root.draw_text(text, style, (x, y)).map_err(draw_err)
}

/// The title and subtitle lines; returns the y below them.
fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: Option<&str>,
) -> Result<i32> {
    let max = WIDTH as i32 - 2 * MARGIN;
    let mut y = HEADER_TOP;
    let t = fit(title, TITLE_SIZE, true, max)?;
    label(
        root,
        &t,
        (MARGIN, y),
        &text_style(TITLE_SIZE, true, INK, HPos::Left),
    )?;
    y += TITLE_LINE;
    if let Some(s) = subtitle {
        let s = fit(s, SUBTITLE_SIZE, false, max)?;
        label(
            root,
            &s,
            (MARGIN, y),
            &text_style(SUBTITLE_SIZE, false, SOFT_INK, HPos::Left),
        )?;
        y += SUBTITLE_LINE;
    }
    Ok(y + HEADER_GAP)
}

/// The y below [`header`]'s lines.
fn header_height(subtitle: bool) -> i32 {
    HEADER_TOP + TITLE_LINE + if subtitle { SUBTITLE_LINE } else { 0 } + HEADER_GAP
}

// ---------------------------------------------------------------------------------------------
// Writing

/// A picture laid out for a size, drawable on any backend.
trait Picture {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// plotters' bitmap backend with the text drawn here. plotters 0.3.7's `ab_glyph` text drops
/// each glyph's side bearing (uneven letter spacing) and sets the baseline half a size below the
/// anchor; this places the glyphs at their true sub-pixel positions, measured as plotters
/// measures them (so its layout holds), with the SVG backend's baselines (top: the cap height
/// hangs from the anchor; centre: the x-height is centred on it).
struct Bitmap<'a>(BitMapBackend<'a>);

impl<'a> DrawingBackend for Bitmap<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: plotters_backend::BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let colour = style.color();
        let Some(faces) = faces() else {
            return self.0.draw_text(text, style, pos);
        };
        if colour.alpha == 0.0 {
            return Ok(());
        }
        let face = &faces[usize::from(matches!(style.style(), FontStyle::Bold))];
        let font = face.as_scaled(PxScale::from(style.size() as f32));
        let mut glyphs = Vec::with_capacity(text.len());
        let mut caret = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                caret += font.kern(p, id);
            }
            glyphs.push((id, caret));
            caret += font.h_advance(id);
            prev = Some(id);
        }
        let anchor = style.anchor();
        let x0 = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -caret / 2.0,
            HPos::Right => -caret,
        };
        let em = font.scale().y
            * face
                .units_per_em()
                .map_or(1.0, |u| u / face.height_unscaled());
        let baseline = match anchor.v_pos {
            VPos::Top => 0.73 * em,
            VPos::Center => 0.27 * em,
            VPos::Bottom => font.descent(),
        };
        let transform = style.transform();
        let (w, h) = self.get_size();
        for (id, x) in glyphs {
            let glyph = id.with_scale_and_position(font.scale(), point(x0 + x, baseline));
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|gx, gy, coverage| {
                if coverage > 0.0 {
                    pixels.push((
                        bounds.min.x as i32 + gx as i32,
                        bounds.min.y as i32 + gy as i32,
                        coverage.min(1.0),
                    ));
                }
            });
            for (px, py, coverage) in pixels {
                let (tx, ty) = transform.transform(px, py);
                let (x, y) = (pos.0 + tx, pos.1 + ty);
                if x >= 0 && y >= 0 && x < w as i32 && y < h as i32 {
                    self.0.draw_pixel(
                        (x, y),
                        BackendColor {
                            alpha: colour.alpha * coverage as f64,
                            rgb: colour.rgb,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Draws `pic` into `png_path` (bitmap) and `png_path` with the extension `svg`.
fn write_pictures(png_path: &Path, pic: &impl Picture) -> Result<()> {
    let size = pic.size();
    atomic(png_path, "png", |tmp| {
        let root = Bitmap(BitMapBackend::new(tmp, size)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        pic.draw(&root)?;
        root.present().map_err(draw_err)
    })?;
    let svg_path = png_path.with_extension("svg");
    atomic(&svg_path, "svg", |tmp| {
        let root = SVGBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        pic.draw(&root)?;
        root.present().map_err(draw_err)
    })
}

/// Runs `write` on a temporary path beside `path` (with extension `ext`, which the bitmap backend
/// reads the format from), then renames it into place; removes the temporary file on error.
fn atomic(path: &Path, ext: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let result = (|| {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let tmp = clot_datasets::fsio::temp_path(path).with_extension(ext);
        let written = write(&tmp).and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| anyhow!("renaming into place: {e}"))
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    })();
    result.with_context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Segments

const BAR: i32 = 22;
const LANE_GAP: i32 = 3;
const ROW_GAP: i32 = 18;
const SWATCH: i32 = 15;
const LEGEND_ROW: i32 = 23;
const MAX_NAME: i32 = 300;
const MAX_ENTRY: i32 = 330;

/// What a frame is coloured by.
#[derive(Clone, Copy, PartialEq)]
enum Paint {
    Class(i32),
    Unmatched,
    Cluster(i32),
}

impl Paint {
    fn colour(self) -> RGBColor {
        match self {
            Paint::Class(c) | Paint::Cluster(c) => class_colour(c),
            Paint::Unmatched => UNMATCHED,
        }
    }
}

struct Row {
    name: String,
    frames: String,
    y: i32,
    truth: Option<Vec<Paint>>,
    prediction: Vec<Paint>,
}

struct Legend {
    heading: String,
    entries: Vec<(RGBColor, String)>,
    columns: usize,
    column_width: i32,
    y: i32,
}

impl Legend {
    fn new(heading: String, entries: Vec<(RGBColor, String)>, y: i32) -> Result<Self> {
        let mut widest = 0;
        let mut fitted = Vec::with_capacity(entries.len());
        for (c, text) in entries {
            let text = fit(&text, TEXT_SIZE, false, MAX_ENTRY)?;
            widest = widest.max(text_width(&text, TEXT_SIZE, false)?);
            fitted.push((c, text));
        }
        let column_width = SWATCH + 8 + widest + 28;
        let columns = (((WIDTH as i32 - 2 * MARGIN) / column_width) as usize).max(1);
        Ok(Self {
            heading,
            entries: fitted,
            columns,
            column_width,
            y,
        })
    }

    fn rows(&self) -> usize {
        self.entries.len().div_ceil(self.columns)
    }

    fn height(&self) -> i32 {
        28 + self.rows() as i32 * LEGEND_ROW
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        label(
            root,
            &self.heading,
            (MARGIN, self.y),
            &text_style(TEXT_SIZE, true, INK, HPos::Left),
        )?;
        let rows = self.rows().max(1);
        let style = text_style(TEXT_SIZE, false, INK, HPos::Left);
        for (i, (colour, text)) in self.entries.iter().enumerate() {
            // column-major: the list reads down, then across
            let (col, row) = (i / rows, i % rows);
            let x = MARGIN + col as i32 * self.column_width;
            let y = self.y + 28 + row as i32 * LEGEND_ROW;
            root.draw(&Rectangle::new(
                [(x, y), (x + SWATCH, y + SWATCH)],
                colour.filled(),
            ))
            .map_err(draw_err)?;
            root.draw(&Rectangle::new(
                [(x, y), (x + SWATCH, y + SWATCH)],
                FRAME.stroke_width(1),
            ))
            .map_err(draw_err)?;
            label(root, text, (x + SWATCH + 8, y + 2), &style)?;
        }
        Ok(())
    }
}

struct SegmentsLayout {
    title: String,
    subtitle: Option<String>,
    name_x: i32,
    lane_x: i32,
    bar_x: i32,
    rows: Vec<Row>,
    legends: Vec<Legend>,
    note: Option<(String, i32)>,
    height: i32,
}

impl SegmentsLayout {
    fn new(plot: &SegmentsPlot<'_>) -> Result<Self> {
        let shown: Vec<&VideoResult> = plot.results.iter().take(plot.max_videos).collect();
        let mut y = header_height(plot.subtitle.is_some());
        let any_truth = shown.iter().any(|r| r.ground_truth.is_some());

        // columns: video names, lane labels, bars
        let mut names = Vec::with_capacity(shown.len());
        let mut name_w = 0;
        for r in &shown {
            let name = fit(&r.name, TEXT_SIZE, true, MAX_NAME)?;
            let frames = format!("{} frames", thousands(r.prediction.len()));
            name_w = name_w
                .max(text_width(&name, TEXT_SIZE, true)?)
                .max(text_width(&frames, SMALL_SIZE, false)?);
            names.push((name, frames));
        }
        let lane_w = if any_truth {
            text_width("ground truth", SMALL_SIZE, false)?.max(text_width(
                "prediction",
                SMALL_SIZE,
                false,
            )?)
        } else {
            text_width("prediction", SMALL_SIZE, false)?
        };
        let name_x = MARGIN;
        let lane_x = name_x + name_w + 20 + lane_w;
        let bar_x = lane_x + 10;

        let paint_pred = |p: i32| match plot.matched {
            Some(m) => m(p).map_or(Paint::Unmatched, Paint::Class),
            None => Paint::Cluster(p),
        };
        let mut rows = Vec::with_capacity(shown.len());
        let mut classes: Vec<i32> = Vec::new();
        let mut clusters: Vec<i32> = Vec::new();
        for (r, (name, frames)) in shown.iter().zip(names) {
            let truth = r.ground_truth.as_ref().map(|gt| {
                classes.extend(gt.iter().copied());
                gt.iter().map(|&g| Paint::Class(g)).collect::<Vec<_>>()
            });
            clusters.extend(r.prediction.iter().copied());
            let prediction = r.prediction.iter().map(|&p| paint_pred(p)).collect();
            let lanes = if truth.is_some() { 2 } else { 1 };
            let block = (lanes * BAR + (lanes - 1) * LANE_GAP).max(40);
            rows.push(Row {
                name,
                frames,
                y,
                truth,
                prediction,
            });
            y += block + ROW_GAP;
        }
        classes.sort_unstable();
        classes.dedup();
        clusters.sort_unstable();
        clusters.dedup();
        if let Some(m) = plot.matched {
            classes.extend(clusters.iter().filter_map(|&p| m(p)));
            classes.sort_unstable();
            classes.dedup();
        }

        let note = shown
            .is_empty()
            .then(|| ("no videos to show".to_owned(), y));
        if note.is_some() {
            y += 40;
        }

        y += 6;
        let mut legends = Vec::new();
        if !classes.is_empty() {
            let entries = classes
                .iter()
                .map(|&c| (class_colour(c), class_label(plot.class_name, c)))
                .collect();
            let legend = Legend::new("ground-truth classes".into(), entries, y)?;
            y += legend.height() + 14;
            legends.push(legend);
        }
        if !clusters.is_empty() {
            let entries = clusters
                .iter()
                .map(|&p| match plot.matched {
                    Some(m) => match m(p) {
                        Some(g) => (
                            class_colour(g),
                            format!("cluster {p} → {}", class_label(plot.class_name, g)),
                        ),
                        None => (UNMATCHED, format!("cluster {p} (unmatched)")),
                    },
                    None => (class_colour(p), format!("cluster {p}")),
                })
                .collect();
            let heading = if plot.matched.is_some() {
                "predicted clusters, in the colour of their matched class"
            } else {
                "predicted clusters"
            };
            let legend = Legend::new(heading.into(), entries, y)?;
            y += legend.height() + 14;
            legends.push(legend);
        }

        Ok(Self {
            title: plot.title.clone(),
            subtitle: plot.subtitle.clone(),
            name_x,
            lane_x,
            bar_x,
            rows,
            legends,
            note,
            height: y + 6,
        })
    }

    fn lane<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        paints: &[Paint],
        y: i32,
    ) -> Result<()> {
        let (x0, x1) = (self.bar_x, WIDTH as i32 - MARGIN);
        let n = paints.len().max(1) as f64;
        let x = |i: usize| x0 + ((x1 - x0) as f64 * i as f64 / n).round() as i32;
        let mut start = 0;
        for i in 1..=paints.len() {
            if i == paints.len() || paints[i] != paints[start] {
                root.draw(&Rectangle::new(
                    [(x(start), y), (x(i), y + BAR)],
                    paints[start].colour().filled(),
                ))
                .map_err(draw_err)?;
                start = i;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y), (x1, y + BAR)],
            FRAME.stroke_width(1),
        ))
        .map_err(draw_err)
    }
}

impl Picture for SegmentsLayout {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.height.max(120) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        header(root, &self.title, self.subtitle.as_deref())?;
        let name_style = text_style(TEXT_SIZE, true, INK, HPos::Left);
        let frames_style = text_style(SMALL_SIZE, false, SOFT_INK, HPos::Left);
        let lane_style = text_style(SMALL_SIZE, false, SOFT_INK, HPos::Right);
        // text of height ~0.62 size sits centred on a bar when its top is this far down
        let centre = |size: f64| ((BAR as f64 - 0.63 * size) / 2.0).round() as i32;
        for row in &self.rows {
            label(root, &row.name, (self.name_x, row.y + 1), &name_style)?;
            label(root, &row.frames, (self.name_x, row.y + 23), &frames_style)?;
            let mut y = row.y;
            if let Some(truth) = &row.truth {
                label(
                    root,
                    "ground truth",
                    (self.lane_x, y + centre(SMALL_SIZE)),
                    &lane_style,
                )?;
                self.lane(root, truth, y)?;
                y += BAR + LANE_GAP;
            }
            label(
                root,
                "prediction",
                (self.lane_x, y + centre(SMALL_SIZE)),
                &lane_style,
            )?;
            self.lane(root, &row.prediction, y)?;
        }
        if let Some((note, y)) = &self.note {
            label(
                root,
                note,
                (MARGIN, *y),
                &text_style(TEXT_SIZE, false, SOFT_INK, HPos::Left),
            )?;
        }
        for legend in &self.legends {
            legend.draw(root)?;
        }
        Ok(())
    }
}

/// `n` with thin spaces between groups of three digits ("12 345").
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Training curve

struct Series {
    label: &'static str,
    colour: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

struct CurveLayout {
    title: String,
    losses: Vec<Series>,
    /// (step, epoch, MoF) of the validated epochs.
    val: Vec<(f64, usize, f64)>,
    steps: (f64, f64),
    loss_range: (f64, f64),
}

impl CurveLayout {
    fn new(title: &str, curve: &[CurvePoint]) -> Result<Self> {
        let finite = |v: f64| v.is_finite().then_some(v);
        let pick = |f: &dyn Fn(&CurvePoint) -> Option<f64>| -> Vec<(f64, f64)> {
            curve
                .iter()
                .filter_map(|p| f(p).and_then(finite).map(|v| (p.step as f64, v)))
                .collect()
        };
        let total = pick(&|p| Some(p.loss));
        let frames = pick(&|p| Some(p.loss_frames));
        let segments = pick(&|p| p.loss_segments);
        let refined = pick(&|p| p.loss_refined);
        let mut losses = Vec::new();
        if total == frames {
            losses.push(Series {
                label: "total = frames CE(T, P)",
                colour: INK,
                width: 2,
                points: total,
            });
        } else {
            losses.push(Series {
                label: "total",
                colour: INK,
                width: 3,
                points: total,
            });
            losses.push(Series {
                label: "frames CE(T, P)",
                colour: PALETTE[0],
                width: 2,
                points: frames,
            });
        }
        losses.push(Series {
            label: "segments CE(T_S, P_S)",
            colour: PALETTE[1],
            width: 2,
            points: segments,
        });
        losses.push(Series {
            label: "refined CE(T_R, P_R)",
            colour: PALETTE[2],
            width: 2,
            points: refined,
        });
        losses.retain(|s| !s.points.is_empty());

        let val: Vec<(f64, usize, f64)> = curve
            .iter()
            .filter_map(|p| {
                p.val_mof
                    .and_then(finite)
                    .map(|m| (p.step as f64, p.epoch, m))
            })
            .collect();
        let xs = losses
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(val.iter().map(|v| v.0));
        let steps = padded(xs, 0.0, None);
        let ys = losses.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let loss_range = padded(ys, 0.05, Some(0.0));
        Ok(Self {
            title: title.to_owned(),
            losses,
            val,
            steps,
            loss_range,
        })
    }
}

/// The range of `values` widened by `pad` of its span on both sides (at least ±1 when the span is
/// empty), the lower end at least `floor`.
fn padded(values: impl Iterator<Item = f64>, pad: f64, floor: Option<f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let (mut lo, hi) = if span > 0.0 {
        (lo - pad * span, hi + pad * span)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    if let Some(f) = floor {
        lo = lo.max(f);
    }
    (lo, hi)
}

impl Picture for CurveLayout {
    fn size(&self) -> (u32, u32) {
        match (
            self.losses.is_empty() && self.val.is_empty(),
            self.val.is_empty(),
        ) {
            (true, _) => (WIDTH, 160),
            (false, true) => (WIDTH, 560),
            (false, false) => (WIDTH, 820),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let top = header(root, &self.title, None)?;
        if self.losses.is_empty() && self.val.is_empty() {
            return label(
                root,
                "no training steps",
                (MARGIN, top + 10),
                &text_style(TEXT_SIZE, false, SOFT_INK, HPos::Left),
            );
        }
        let body = root.margin(top as u32, 10, 10, 20);
        let (loss_area, val_area) = if self.val.is_empty() {
            (body, None)
        } else {
            let (_, h) = body.dim_in_pixel();
            let (a, b) = body.split_vertically((h as f64 * 0.64) as u32);
            (a, Some(b))
        };
        let axis_label = || TextStyle::from(font(SMALL_SIZE, false)).color(&INK);
        let axis_desc = || TextStyle::from(font(TEXT_SIZE, false)).color(&INK);
        let legend_font = axis_label;
        let (x0, x1) = self.steps;

        if !self.losses.is_empty() {
            let (y0, y1) = self.loss_range;
            let mut chart = ChartBuilder::on(&loss_area)
                .margin_right(20)
                .x_label_area_size(44)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc("cross-entropy")
                .label_style(axis_label())
                .axis_desc_style(axis_desc())
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.2}"))
                .light_line_style(RGBColor(238, 238, 238))
                .bold_line_style(RGBColor(215, 215, 215))
                .draw()
                .map_err(draw_err)?;
            for s in &self.losses {
                let style = s.colour.stroke_width(s.width);
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), style))
                    .map_err(draw_err)?
                    .label(s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(FRAME)
                .label_font(legend_font())
                .draw()
                .map_err(draw_err)?;
        }

        if let Some(area) = val_area {
            let mut chart = ChartBuilder::on(&area)
                .margin_top(14)
                .margin_right(20)
                .x_label_area_size(44)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, 0.0..1.0)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc("validation MoF")
                .label_style(axis_label())
                .axis_desc_style(axis_desc())
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.1}"))
                .y_labels(6)
                .light_line_style(RGBColor(238, 238, 238))
                .bold_line_style(RGBColor(215, 215, 215))
                .draw()
                .map_err(draw_err)?;
            let colour = PALETTE[3];
            let style = colour.stroke_width(2);
            let points: Vec<(f64, f64)> = self.val.iter().map(|&(x, _, m)| (x, m)).collect();
            let (mut best, mut best_epoch) = (f64::NEG_INFINITY, 0);
            for &(_, e, m) in &self.val {
                if m > best {
                    (best, best_epoch) = (m, e);
                }
            }
            let last = self.val.last().map_or(0.0, |v| v.2);
            let text = format!(
                "validation MoF per epoch (last {last:.3}, best {best:.3} at epoch {best_epoch})"
            );
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))
                .map_err(draw_err)?
                .label(text)
                .legend(move |(x, y)| {
                    // the parts of a composed element are placed relative to its anchor
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (24, 0)], style)
                        + Circle::new((12, 0), 4, colour.filled())
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                .map_err(draw_err)?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.9))
                .border_style(FRAME)
                .label_font(legend_font())
                .draw()
                .map_err(draw_err)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sweep reports: a metric against a setting (error bars), and several loss curves

/// One point of an [`ErrorBarPlot`]: a mean and its spread at an x position.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorPoint {
    /// Position on the x axis (a setting's value, its log10, or a category's index).
    pub x: f64,
    pub mean: f64,
    /// Half the bar's height (e.g. the sample standard deviation over seeds); `None` draws none.
    pub spread: Option<f64>,
}

/// One series of an [`ErrorBarPlot`]: a label for the legend and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorSeries {
    pub label: String,
    pub points: Vec<ErrorPoint>,
}

/// What [`error_bars`] draws: points with vertical error bars over labelled x positions, one
/// colour per series, joined by lines when the x axis is numeric.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBarPlot {
    pub title: String,
    pub subtitle: Option<String>,
    pub x_label: String,
    pub y_label: String,
    /// The x axis's ticks: (position, label), e.g. the swept values or the categories at 0, 1, ….
    pub ticks: Vec<(f64, String)>,
    /// Join each series's points by a line (a numeric setting); otherwise the x axis holds
    /// categories and the series are spread sideways around each category.
    pub lines: bool,
    /// The legend's heading, e.g. "mode".
    pub legend_title: String,
    pub series: Vec<ErrorSeries>,
}

/// Writes an error-bar chart to `png_path` and beside it with the extension `svg`.
pub fn error_bars(png_path: &Path, plot: &ErrorBarPlot) -> Result<()> {
    fonts()?;
    write_pictures(png_path, &ErrorBarLayout::new(plot)?)
}

/// One line of a [`LinesPlot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// What [`lines`] draws: several lines over one x axis (e.g. the loss per step of each seed).
#[derive(Debug, Clone, PartialEq)]
pub struct LinesPlot {
    pub title: String,
    pub subtitle: Option<String>,
    pub x_label: String,
    pub y_label: String,
    /// The legend's heading, e.g. "seed".
    pub legend_title: String,
    pub lines: Vec<Line>,
}

/// Writes a line chart to `png_path` and beside it with the extension `svg`.
pub fn lines(png_path: &Path, plot: &LinesPlot) -> Result<()> {
    fonts()?;
    write_pictures(png_path, &LinesLayout::new(plot)?)
}

/// Height of the chart of [`error_bars`] and [`lines`], axes included.
const CHART_HEIGHT: i32 = 540;

/// The colour of the `i`-th series.
fn series_colour(i: usize) -> RGBColor {
    class_colour(i as i32)
}

/// The header, a chart area of [`CHART_HEIGHT`] below it and a legend below that.
struct ChartFrame {
    title: String,
    subtitle: Option<String>,
    chart_top: i32,
    legend: Option<Legend>,
    height: i32,
}

impl ChartFrame {
    fn new(
        title: &str,
        subtitle: Option<&str>,
        legend_title: &str,
        entries: Vec<(RGBColor, String)>,
    ) -> Result<Self> {
        let chart_top = header_height(subtitle.is_some());
        let mut y = chart_top + CHART_HEIGHT + 12;
        let legend = if entries.is_empty() {
            None
        } else {
            let legend = Legend::new(legend_title.to_owned(), entries, y)?;
            y += legend.height();
            Some(legend)
        };
        Ok(Self {
            title: title.to_owned(),
            subtitle: subtitle.map(str::to_owned),
            chart_top,
            legend,
            height: y + 12,
        })
    }

    /// Draws the header and the legend; returns the chart's area.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<DrawingArea<DB, Shift>> {
        header(root, &self.title, self.subtitle.as_deref())?;
        if let Some(legend) = &self.legend {
            legend.draw(root)?;
        }
        let (_, below) = root.split_vertically(self.chart_top as u32);
        let (chart, _) = below.split_vertically(CHART_HEIGHT as u32);
        Ok(chart.margin(0, 0, 10, 30))
    }
}

fn axis_label_style() -> TextStyle<'static> {
    TextStyle::from(font(SMALL_SIZE, false)).color(&INK)
}

fn axis_desc_style() -> TextStyle<'static> {
    TextStyle::from(font(TEXT_SIZE, false)).color(&INK)
}

/// Tick labels with enough decimals to tell neighbouring ticks of `range` apart.
fn number_label(v: f64, step: f64) -> String {
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10()).ceil().clamp(0.0, 6.0) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

struct ErrorBarLayout {
    plot: ErrorBarPlot,
    frame: ChartFrame,
    x_range: (f64, f64),
    y_range: (f64, f64),
    /// Sideways offset of each series (x units).
    offsets: Vec<f64>,
}

impl ErrorBarLayout {
    fn new(plot: &ErrorBarPlot) -> Result<Self> {
        let entries = plot
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (series_colour(i), s.label.clone()))
            .collect();
        let frame = ChartFrame::new(
            &plot.title,
            plot.subtitle.as_deref(),
            &plot.legend_title,
            entries,
        )?;
        let xs = plot.ticks.iter().map(|t| t.0).chain(
            plot.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.x)),
        );
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let x_range = if lo > hi {
            (-0.5, 0.5)
        } else if !plot.lines {
            (lo - 0.5, hi + 0.5)
        } else if hi > lo {
            (lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo))
        } else {
            (lo - 1.0, hi + 1.0)
        };
        let n = plot.series.len().max(1) as f64;
        // categories: the series side by side within ±0.3; numbers: a nudge so equal points and
        // their bars stay apart
        let width = if plot.lines {
            0.02 * (x_range.1 - x_range.0)
        } else {
            (0.15 * (n - 1.0)).min(0.6)
        };
        let offsets = (0..plot.series.len())
            .map(|i| {
                if plot.series.len() < 2 {
                    0.0
                } else {
                    width * (i as f64 / (n - 1.0) - 0.5)
                }
            })
            .collect();
        let ys = plot.series.iter().flat_map(|s| {
            s.points.iter().flat_map(|p| {
                let d = p.spread.unwrap_or(0.0);
                [p.mean - d, p.mean + d]
            })
        });
        let ys: Vec<f64> = ys.filter(|v| v.is_finite()).collect();
        let all_unit = ys.iter().all(|v| (0.0..=1.0).contains(v));
        let mut y_range = padded(ys.iter().copied(), 0.12, None);
        if all_unit {
            y_range = (y_range.0.max(0.0), y_range.1.min(1.0));
            if y_range.1 <= y_range.0 {
                y_range = (0.0, 1.0);
            }
        }
        Ok(Self {
            plot: plot.clone(),
            frame,
            x_range,
            y_range,
            offsets,
        })
    }
}

impl Picture for ErrorBarLayout {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.frame.height as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = self.frame.draw(root)?;
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        let y_step = (y1 - y0) / 8.0;
        let mut chart = ChartBuilder::on(&area)
            .margin_right(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        // the x ticks are the plot's own (the swept values): drawn below, not plotters' round ones
        chart
            .configure_mesh()
            .x_desc(self.plot.x_label.as_str())
            .y_desc(self.plot.y_label.as_str())
            .label_style(axis_label_style())
            .axis_desc_style(axis_desc_style())
            .x_labels(0)
            .disable_x_mesh()
            .y_label_formatter(&|v| number_label(*v, y_step))
            .y_labels(9)
            .y_max_light_lines(1)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(draw_err)?;
        let tick_style = text_style(SMALL_SIZE, false, INK, HPos::Center);
        for (x, text) in &self.plot.ticks {
            let (px, top) = chart.backend_coord(&(*x, y1));
            let (_, bottom) = chart.backend_coord(&(*x, y0));
            root.draw(&PathElement::new(
                vec![(px, top), (px, bottom)],
                RGBColor(225, 225, 225).stroke_width(1),
            ))
            .map_err(draw_err)?;
            root.draw(&PathElement::new(
                vec![(px, bottom), (px, bottom + 6)],
                INK.stroke_width(1),
            ))
            .map_err(draw_err)?;
            label(root, text, (px, bottom + 9), &tick_style)?;
        }
        for (i, s) in self.plot.series.iter().enumerate() {
            let colour = series_colour(i);
            let dx = self.offsets[i];
            let mut points: Vec<&ErrorPoint> = s.points.iter().collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            if self.plot.lines && points.len() > 1 {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().map(|p| (p.x + dx, p.mean)),
                        colour.stroke_width(2),
                    ))
                    .map_err(draw_err)?;
            }
            for p in &points {
                let (px, py) = chart.backend_coord(&(p.x + dx, p.mean));
                if let Some(d) = p.spread.filter(|d| *d > 0.0 && d.is_finite()) {
                    let (_, top) = chart.backend_coord(&(p.x + dx, p.mean + d));
                    let (_, bottom) = chart.backend_coord(&(p.x + dx, p.mean - d));
                    let style = colour.stroke_width(2);
                    for path in [
                        vec![(px, top), (px, bottom)],
                        vec![(px - 7, top), (px + 7, top)],
                        vec![(px - 7, bottom), (px + 7, bottom)],
                    ] {
                        root.draw(&PathElement::new(path, style))
                            .map_err(draw_err)?;
                    }
                }
                root.draw(&Circle::new((px, py), 6, colour.filled()))
                    .map_err(draw_err)?;
                root.draw(&Circle::new((px, py), 6, WHITE.stroke_width(1)))
                    .map_err(draw_err)?;
            }
        }
        Ok(())
    }
}

struct LinesLayout {
    plot: LinesPlot,
    frame: ChartFrame,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

impl LinesLayout {
    fn new(plot: &LinesPlot) -> Result<Self> {
        let entries = plot
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (series_colour(i), l.label.clone()))
            .collect();
        let frame = ChartFrame::new(
            &plot.title,
            plot.subtitle.as_deref(),
            &plot.legend_title,
            entries,
        )?;
        let finite = |v: &f64| v.is_finite();
        let xs = plot
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .filter(finite);
        let ys = plot
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(finite);
        Ok(Self {
            plot: plot.clone(),
            frame,
            x_range: padded(xs, 0.0, None),
            y_range: padded(ys, 0.05, None),
        })
    }
}

impl Picture for LinesLayout {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.frame.height as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let area = self.frame.draw(root)?;
        if self.plot.lines.iter().all(|l| l.points.is_empty()) {
            return label(
                &area,
                "no points",
                (MARGIN, 10),
                &text_style(TEXT_SIZE, false, SOFT_INK, HPos::Left),
            );
        }
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        let (x_step, y_step) = ((x1 - x0) / 10.0, (y1 - y0) / 8.0);
        let mut chart = ChartBuilder::on(&area)
            .margin_right(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.plot.x_label.as_str())
            .y_desc(self.plot.y_label.as_str())
            .label_style(axis_label_style())
            .axis_desc_style(axis_desc_style())
            .x_label_formatter(&|v| number_label(*v, x_step))
            .y_label_formatter(&|v| number_label(*v, y_step))
            .max_light_lines(1)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(draw_err)?;
        for (i, l) in self.plot.lines.iter().enumerate() {
            let points = l
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            chart
                .draw_series(LineSeries::new(points, series_colour(i).stroke_width(2)))
                .map_err(draw_err)?;
        }
        Ok(())
    }
}
