// Package worklist is the component "worklist": the hub's Modality
// Worklist provider and Performed Procedure Step Manager (IHE Radiology
// Scheduled Workflow, RAD-5 Query Modality Worklist, RAD-6/RAD-7 Modality
// Procedure Step In Progress/Completed).
//
// It keeps its own projection, the table worklist_items with one row per
// Scheduled Procedure Step, fed by two durable consumers of the event
// stream — "worklist-orders" on ih.order.> and "worklist-patients" on
// ih.patient.> — and by hand through the REST API under
// /api/worklist/items for sites without a RIS. Applying an event is
// idempotent: its id is recorded in the same transaction, and an order
// event older than the version the items hold is ignored.
//
// On the hub's DICOM listener it registers the Modality Worklist
// Information Model – FIND SOP class (PS3.4 Annex K), answering with one
// Pending response per matching item and the keys the query asked for,
// and the Modality Performed Procedure Step SOP class (PS3.4 Annex F),
// whose N-CREATE and N-SET move the linked worklist items to STARTED,
// COMPLETED or DISCONTINUED and emit ih.procedure.started, .completed or
// .discontinued through the outbox in the same transaction.
//
// Find, CreateMPPS and SetMPPS are the SCU side, used by the imaginghub
// CLI and the tests.
package worklist
