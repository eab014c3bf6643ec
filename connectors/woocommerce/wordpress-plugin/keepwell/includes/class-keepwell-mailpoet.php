<?php
/**
 * MailPoet's subscriber status, mirrored into the customer meta Keepwell reads.
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * MailPoet keeps subscribers in its own tables, which WooCommerce's REST API and webhooks do not
 * show. When a subscriber's status changes, the customer's consent meta follows it, and saving
 * the customer sends Keepwell a customer.updated webhook. On activation the subscribers MailPoet
 * already has are copied in batches through Action Scheduler (part of WooCommerce).
 */
class Keepwell_MailPoet {

	const SYNC_ACTION = 'keepwell_mailpoet_sync';
	const SYNC_OPTION = 'keepwell_mailpoet_sync_pending';
	const BATCH       = 100;

	/**
	 * Listens to MailPoet when it is active, and runs the one-off copy of existing subscribers.
	 */
	public static function init() {
		add_action( 'mailpoet_subscriber_status_changed', array( __CLASS__, 'status_changed' ) );
		add_action( self::SYNC_ACTION, array( __CLASS__, 'sync_batch' ) );
		add_action( 'init', array( __CLASS__, 'start_sync' ), 20 );
	}

	/**
	 * On activation: copy the status of the subscribers MailPoet already has, so consent is known
	 * from the first day (started on the next request, once Action Scheduler is ready).
	 */
	public static function activate() {
		update_option( self::SYNC_OPTION, 'yes', false );
	}

	/**
	 * Queues the first batch of the copy when one is pending and MailPoet is there to copy from.
	 */
	public static function start_sync() {
		if ( 'yes' !== get_option( self::SYNC_OPTION ) || ! function_exists( 'as_enqueue_async_action' ) ) {
			return;
		}
		delete_option( self::SYNC_OPTION );
		if ( class_exists( '\MailPoet\API\API' ) ) {
			as_enqueue_async_action( self::SYNC_ACTION, array( 0 ), 'keepwell' );
		}
	}

	/**
	 * Copies one batch of subscribers, then queues the next. A customer who already has an
	 * answer (given at checkout or on the account page) keeps it.
	 *
	 * @param int $offset How many subscribers earlier batches covered.
	 */
	public static function sync_batch( $offset ) {
		if ( ! class_exists( '\MailPoet\API\API' ) ) {
			return;
		}
		try {
			$subscribers = \MailPoet\API\API::MP( 'v1' )->getSubscribers( array(), self::BATCH, (int) $offset );
		} catch ( Exception $e ) {
			return;
		}
		foreach ( $subscribers as $subscriber ) {
			self::mirror( $subscriber, false );
		}
		if ( count( $subscribers ) === self::BATCH ) {
			as_enqueue_async_action( self::SYNC_ACTION, array( (int) $offset + self::BATCH ), 'keepwell' );
		}
	}

	/**
	 * Mirrors one subscriber's status: subscribed is consent; unsubscribed, bounced and inactive
	 * withdraw it; unconfirmed (double opt-in pending) changes nothing.
	 *
	 * @param int $subscriber_id MailPoet's subscriber id.
	 */
	public static function status_changed( $subscriber_id ) {
		if ( ! class_exists( '\MailPoet\API\API' ) ) {
			return;
		}
		try {
			$subscriber = \MailPoet\API\API::MP( 'v1' )->getSubscriber( $subscriber_id );
		} catch ( Exception $e ) {
			return;
		}
		self::mirror( $subscriber, true );
	}

	/**
	 * Writes a subscriber's status into their customer's consent meta.
	 *
	 * @param array $subscriber MailPoet's subscriber (wp_user_id, status, ...).
	 * @param bool  $overwrite  Whether an answer the customer already has is replaced.
	 */
	private static function mirror( $subscriber, $overwrite ) {
		$user_id = isset( $subscriber['wp_user_id'] ) ? (int) $subscriber['wp_user_id'] : 0;
		$status  = isset( $subscriber['status'] ) ? $subscriber['status'] : '';
		if ( ! $user_id || ! in_array( $status, array( 'subscribed', 'unsubscribed', 'bounced', 'inactive' ), true ) ) {
			return;
		}
		$customer = new WC_Customer( $user_id );
		if ( ! $overwrite && '' !== $customer->get_meta( Keepwell_Meta::OPT_IN ) ) {
			return;
		}
		Keepwell_Meta::set_consent( $customer, 'subscribed' === $status, 'mailpoet' );
		$customer->save();
	}
}
