// Package fhir is the hub's FHIR R4 face for EMRs.
//
// It keeps a table of FHIR resources (ImagingStudy, Patient,
// ServiceRequest, DiagnosticReport, Endpoint, Subscription), each with its
// versions and search index, projected from the hub's events: a study
// becoming stable (ih.dicom.study.stable), orders (ih.order.*), patients
// (ih.patient.*), reports (ih.report.received) and reconciliation
// (ih.study.reconciled). Every resource is built as a google/fhir/go R4
// proto and serialized by its jsonformat marshaller; what clients send is
// parsed by its validating unmarshaller.
//
// Served under /fhir on the hub's HTTP listener: GET metadata, read,
// vread and search of every resource type (searchset Bundles with paging
// links and _count; ETag and meta.versionId; application/fhir+json;
// errors as OperationOutcome), and create, update and delete of
// Subscription.
//
// Each changed ImagingStudy and DiagnosticReport is pushed, with its
// Patient, to every configured EMR target: conditional update by
// identifier (PUT ImagingStudy?identifier=urn:dicom:uid|urn:oid:…), the
// Patient by conditional create (If-None-Exist), or both in one
// transaction Bundle. Pushes go through a JetStream work queue per target
// (IH_FHIR_PUSH, subject ihfhir.push.<target>), one at a time and in
// order, retried with back-off and dead-lettered when refused or out of
// attempts; a target never gets an older version after a newer one. Each
// accepted push emits ih.fhir.published.
//
// Subscriptions are R4 rest-hook subscriptions on ImagingStudy,
// DiagnosticReport and ServiceRequest criteria, and topic-based ones of
// the Subscriptions R5 Backport IG on the ImagingStudy topic
// (TopicImagingStudy); notifications go through their own work queue
// (IH_FHIR_NOTIFY), so none is lost across restarts.
package fhir
