package models

import "gorm.io/gorm"

// EnqueueMail queues mails as part of tx, the transaction of the change
// that sends them: they go out if and only if it commits.
func EnqueueMail(tx *gorm.DB, mails ...*OutboxMail) error {
	if len(mails) == 0 {
		return nil
	}
	return tx.Create(mails).Error
}
