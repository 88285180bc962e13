package models

// MigrateInitial exposes the first migration to the tests of package
// models_test, which build databases the way authql did before versioned
// migrations with it.
var MigrateInitial = migrateInitial
