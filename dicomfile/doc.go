// Package dicomfile reads and writes the parts of DICOM Part 10 files that an
// archive needs on its hot path: the File Meta Information group (PS3.10 §7.1)
// and the header of a data set up to, but not including, its pixel data.
//
// Writing the file meta is hand-encoded so that an SCP can put it in front of
// a data set received over the network without building a data set in memory.
// Reading a header stops at Pixel Data (7FE0,0010), Float Pixel Data
// (7FE0,0008) or Double Float Pixel Data (7FE0,0009) without reading the
// value, so memory and I/O do not grow with the size of the pixel data.
//
// The package also holds the transfer syntax table (PS3.5 §10, PS3.6 Annex A),
// the list of Storage SOP classes (PS3.4 Annex B) and UID helpers (PS3.5 §9,
// §B.2).
package dicomfile
