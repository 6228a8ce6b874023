module.exports.globals = { _: false, async: false, models: true, sails: true };
