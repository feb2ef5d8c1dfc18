//! placeholder: owned by its issue's work; replaced as that work lands.
