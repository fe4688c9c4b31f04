// Custom search attributes, so the UI's workflow list can filter and show where each migration
// stands. They must be registered on the namespace: the worker does it at start (or says how).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const MIGRATION_TARGET = defineSearchAttributeKey('MigrationTarget', SearchAttributeType.KEYWORD);
export const MIGRATION_PHASE = defineSearchAttributeKey('MigrationPhase', SearchAttributeType.KEYWORD);
export const MIGRATION_STATE = defineSearchAttributeKey('MigrationState', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [MIGRATION_TARGET, MIGRATION_PHASE, MIGRATION_STATE];
