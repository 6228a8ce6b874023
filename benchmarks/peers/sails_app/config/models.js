module.exports.models = {
  datastore: 'default',
  // production refuses 'alter' and 'drop'; sails-disk needs no schema, and its files are removed before
  // every start
  migrate: 'safe',
  attributes: {
    createdAt: { type: 'number', autoCreatedAt: true },
    updatedAt: { type: 'number', autoUpdatedAt: true },
    id: { type: 'number', autoIncrement: true }
  },
  dataEncryptionKeys: { default: 'bnVsbHNlY3JldGtleWZvcmJlbmNobWFya3NvbmJiYmI=' },
  cascadeOnDestroy: true
};
