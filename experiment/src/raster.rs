//! PNG output without system libraries.
//!
//! plotters' own bitmap backend draws text through a font library that needs fonts installed on
//! the machine. [`RasterBackend`] instead draws every shape into an RGB buffer with plotters'
//! default rasterizer (lines, rectangles, circles and polygons are built from `draw_pixel`) and
//! draws text with the public-domain 8x8 bitmap font of the `font8x8` crate, scaled to the size asked
//! for. The buffer is written as PNG with the `png` crate. Both crates are pure Rust.
//!
//! The glyph box is as wide and as high as plotters' own text size estimate (the one it uses for
//! layout when no font library is compiled in), so labels land where the layout expects them.

use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use std::path::Path;

/// An RGB image being drawn.
pub struct Raster {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Raster {
    /// A white image.
    pub fn new(width: u32, height: u32) -> Raster {
        Raster {
            width,
            height,
            pixels: vec![255; width as usize * height as usize * 3],
        }
    }

    /// The pixel at (x, y) as RGB.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Writes the image as an 8-bit RGB PNG.
    pub fn write_png(&self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Best);
        let mut writer = encoder
            .write_header()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writer
            .write_image_data(&self.pixels)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writer
            .finish()
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A plotters backend drawing into this image.
    pub fn backend(&mut self) -> RasterBackend<'_> {
        RasterBackend { raster: self }
    }

    fn blend(&mut self, x: i32, y: i32, color: BackendColor) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 || color.alpha <= 0.0
        {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let a = color.alpha.min(1.0);
        let (r, g, b) = color.rgb;
        for (k, c) in [r, g, b].into_iter().enumerate() {
            let old = f64::from(self.pixels[i + k]);
            self.pixels[i + k] = (old * (1.0 - a) + f64::from(c) * a).round() as u8;
        }
    }
}

/// The error type of [`RasterBackend`] (it cannot fail while drawing).
#[derive(Debug)]
pub struct RasterError;

impl std::fmt::Display for RasterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("raster drawing error")
    }
}

impl std::error::Error for RasterError {}

/// A plotters [`DrawingBackend`] over a [`Raster`].
pub struct RasterBackend<'a> {
    raster: &'a mut Raster,
}

/// Width and height in pixels of one character at font size `size`: plotters' own estimate
/// (0.7 em wide, 1 em high, with em = size / 1.24²).
pub fn glyph_box(size: f64) -> (i32, i32) {
    let em = size / 1.24 / 1.24;
    (
        ((em * 0.7).round() as i32).max(4),
        (em.round() as i32).max(6),
    )
}

/// The 8x8 bitmap of `c` (a box for characters the font lacks).
fn glyph(c: char) -> [u8; 8] {
    let code = c as u32;
    if code < 128 {
        font8x8::legacy::BASIC_LEGACY[code as usize]
    } else if (0xA0..0x100).contains(&code) {
        font8x8::legacy::LATIN_LEGACY[(code - 0xA0) as usize]
    } else {
        [0x7E, 0x42, 0x42, 0x42, 0x42, 0x42, 0x7E, 0x00]
    }
}

impl DrawingBackend for RasterBackend<'_> {
    type ErrorType = RasterError;

    fn get_size(&self) -> (u32, u32) {
        (self.raster.width, self.raster.height)
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<RasterError>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<RasterError>> {
        Ok(())
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<RasterError>> {
        self.raster.blend(point.0, point.1, color);
        Ok(())
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<RasterError>> {
        let color = style.color();
        let (cw, ch) = glyph_box(style.size());
        let width = cw * text.chars().count() as i32;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -width / 2,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -ch / 2,
            VPos::Bottom => -ch,
        };
        let transform = style.transform();
        for (i, c) in text.chars().enumerate() {
            let bits = glyph(c);
            for y in 0..ch {
                let row = bits[(y * 8 / ch) as usize];
                for x in 0..cw {
                    if row >> (x * 8 / cw) & 1 == 1 {
                        let (tx, ty) = transform.transform(i as i32 * cw + x + dx, y + dy);
                        self.raster.blend(pos.0 + tx, pos.1 + ty, color);
                    }
                }
            }
        }
        Ok(())
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<RasterError>> {
        let (cw, ch) = glyph_box(style.size());
        Ok((cw as u32 * text.chars().count() as u32, ch as u32))
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<RasterError>> {
        if !fill {
            let (l, t, r, b) = (upper_left.0, upper_left.1, bottom_right.0, bottom_right.1);
            for (a, z) in [
                ((l, t), (r, t)),
                ((r, t), (r, b)),
                ((r, b), (l, b)),
                ((l, b), (l, t)),
            ] {
                self.draw_line(a, z, style)?;
            }
            return Ok(());
        }
        let color = style.color();
        for y in upper_left.1.min(bottom_right.1)..=upper_left.1.max(bottom_right.1) {
            for x in upper_left.0.min(bottom_right.0)..=upper_left.0.max(bottom_right.0) {
                self.raster.blend(x, y, color);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn text_and_shapes_are_drawn_and_written_as_png() {
        let mut raster = Raster::new(200, 100);
        {
            let root = raster.backend().into_drawing_area();
            root.draw(&Rectangle::new([(10, 10), (20, 20)], RED.filled()))
                .unwrap();
            root.draw(&Text::new(
                "Hi",
                (50, 40),
                ("sans-serif", 40).into_font().color(&BLACK),
            ))
            .unwrap();
            root.present().unwrap();
        }
        assert_eq!(raster.pixel(15, 15), [255, 0, 0]);
        assert_eq!(raster.pixel(150, 90), [255, 255, 255]);
        // Some pixels of the text box are black, as drawn by the bitmap font.
        let (cw, ch) = glyph_box(40.0);
        let dark = (50..50 + 2 * cw as u32)
            .flat_map(|x| (40..40 + ch as u32).map(move |y| (x, y)))
            .filter(|(x, y)| raster.pixel(*x, *y) == [0, 0, 0])
            .count();
        assert!(dark > 20, "{dark} dark pixels");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        raster.write_png(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
