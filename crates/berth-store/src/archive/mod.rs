//! Image archives: `load` reads an OCI image-layout tar or a `docker save` tar, `save` writes an
//! OCI image-layout tar that also carries Docker's `manifest.json`.

mod load;
mod save;

pub(crate) use load::load;
pub(crate) use save::save;
mod staging;
