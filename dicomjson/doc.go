// Package dicomjson is the DICOM JSON Model of PS3.18 Annex F, both ways.
//
// A DataSet maps tags to Attributes, each with its VR and its values in the
// form Annex F gives them: text for string VRs, numbers for the binary and
// decimal numeric VRs, {"Alphabetic","Ideographic","Phonetic"} objects for
// PN, nested data sets for SQ, and either InlineBinary (base64) or a
// BulkDataURI for the binary VRs.
//
// Three conversions are provided:
//
//   - FromElements decodes the top-level elements kept by dicomfile's header
//     parser, in the data set's own transfer syntax, into a DataSet; sequence
//     values are decoded into nested items here (dicomfile keeps them raw).
//   - DataSet.MarshalJSON / AppendJSON write the JSON object of §F.2, keys in
//     ascending tag order; Unmarshal and UnmarshalArray read it back with the
//     validation §F.2 implies (8 hex digit keys, known VR codes, value
//     types per VR).
//   - Write encodes a DataSet as an Explicit VR Little Endian data set
//     (PS3.5 §7.1.2), so a JSON data set can become a binary one.
package dicomjson
